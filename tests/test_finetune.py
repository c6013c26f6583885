"""segmenter.finetune: LoRA wrap/merge, seeding, and the deep options as a config section."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch
from torch import nn

from segmenter.config import SegmenterConfig
from segmenter.errors import SegmenterError
from segmenter.finetune import DeepOptions, add_lora, autocast, merge_lora, seeded


def _tiny_bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32)  # fmt: skip
    return BertModel(config).eval()


def test_lora_finds_the_attention_projections_and_merges_back() -> None:
    base = _tiny_bert()
    ids = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(1))
    before = base(input_ids=ids).last_hidden_state
    with seeded(0, "cpu"):
        wrapped = add_lora(base, rank=4)
    trainable = {n.split(".lora_")[0].rsplit(".", 1)[-1]
                 for n, p in wrapped.named_parameters() if p.requires_grad}  # fmt: skip
    assert trainable == {"query", "key", "value"}  # adapters only, on the detected layers
    assert sum(p.numel() for p in wrapped.parameters() if p.requires_grad) < 0.2 * sum(
        p.numel() for p in wrapped.parameters()
    )
    # adapters start as a no-op (B = 0); after a change they move the output
    with torch.no_grad():
        for name, param in wrapped.named_parameters():
            if "lora_B" in name:
                param.add_(0.05)
    wrapped.eval()
    adapted = wrapped(input_ids=ids).last_hidden_state
    assert not torch.allclose(adapted, before, atol=1e-4)
    merged = merge_lora(wrapped)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert torch.allclose(merged(input_ids=ids).last_hidden_state, adapted, atol=1e-5)
    plain = nn.Linear(3, 3)
    assert merge_lora(plain) is plain


def test_lora_on_an_encoder_without_attention_projections_names_the_option() -> None:
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(SegmenterError, match="--deep-lora: the encoder has no attention proj"):
        add_lora(mlp, rank=4, option="--deep-lora")


def test_seeded_repeats_draws_and_leaves_the_callers_generator_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7, "cpu"):
        first = torch.rand(4)
    with seeded(7, "cpu"):
        second = torch.rand(4)
    assert torch.equal(first, second)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream is untouched


def test_autocast_is_off_on_cpu() -> None:
    assert isinstance(autocast("cpu"), contextlib.nullcontext)
    assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)


def test_deep_options_round_trip_through_json() -> None:
    config = SegmenterConfig(
        deep=True,
        deep_options=DeepOptions(steps=7, lora=True, positives="views"),
        deep_keep_behaviour=0.5,
        seed=3,
    ).validate()
    data = json.loads(json.dumps(config.to_dict()))
    assert data["deep_options"]["steps"] == 7 and "seed" not in data["deep_options"]
    assert "keep_behaviour" not in data["deep_options"]
    assert SegmenterConfig.from_dict(data) == config
    assert SegmenterConfig.from_dict(SegmenterConfig().to_dict()) == SegmenterConfig()


def test_untyped_deep_options_are_refused() -> None:
    with pytest.raises(SegmenterError, match="deep_options: dict should be a DeepOptions"):
        SegmenterConfig(deep=True, deep_options={"steps": 4}).validate()  # type: ignore[arg-type]
