"""Supervised customer classification: training, prediction, persistence and every error path.

One tiny CLI training run with the real packaged encoder (module fixture) serves the
end-to-end tests; the library tests fit on a handful of short texts for a few steps.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.classify import cli
from segmenter.classify import CustomerClassifier, labels_from_run, read_labels
from segmenter.classify.labels import check_classes, match_users
from segmenter.classify.split import stratified_split
from segmenter.classify.workflow import CustomerModel, predictions_frame
from segmenter.errors import SegmenterError
from segmenter.synthetic import generate

#: Three planted archetypes; one name needs HTML escaping in metrics.html.
ARCHETYPES = {
    "Budget family": "Budget & <family>",
    "Tech enthusiast": "Tech enthusiast",
    "Weekend fashion": "Weekend fashion",
}
FAST = ["--epochs", "1", "--max-steps", "2", "--max-tokens", "48", "--device", "cpu"]


def _customers(n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Events and labels of the customers of three archetypes in a synthetic sample."""
    tables = generate(n, seed=seed)
    labels = tables["labels"].filter(pl.col("archetype").is_in(list(ARCHETYPES)))
    labels = labels.select("user_id", pl.col("archetype").replace(ARCHETYPES).alias("label"))
    events = tables["events"].filter(pl.col("user_id").is_in(labels["user_id"].implode()))
    return events, labels


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread in this module, then restore the setting.

    On a 2-core machine shared with other processes, small forward passes on two OpenMP
    threads were measured 25x slower than on one (each waits for a descheduled partner).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def toy(one_torch_thread: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("classify")
    events, labels = _customers(300, seed=1)
    events.write_parquet(root / "events.parquet")
    strangers = pl.DataFrame({"user_id": ["X1", "X2", "X3"], "label": ["Tech enthusiast"] * 3})
    pl.concat([labels, strangers]).write_csv(root / "labels.csv")
    new_events, new_labels = _customers(120, seed=2)
    new_events.write_parquet(root / "new_events.parquet")
    new_labels.write_parquet(root / "new_labels.parquet")
    return {"root": root, "events": root / "events.parquet", "labels": root / "labels.csv"}


@pytest.fixture(scope="module")
def trained(toy: dict[str, Path]) -> Path:
    out = toy["root"] / "model"
    code = cli(
        ["train", "--input", str(toy["events"]), "--labels", str(toy["labels"]), "--out",
         str(out), "--quiet", *FAST]
    )  # fmt: skip
    assert code == 0
    return out


def test_train_learns_and_reports_against_baselines(trained: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["task"]["labels_unknown_users"] == 3
    assert set(metrics["task"]["class_counts"]) == set(ARCHETYPES.values())
    fine = metrics["models"]["fine_tuned_encoder"]
    assert fine["accuracy"] >= 0.8  # chance is about 0.4 (largest class)
    assert fine["macro_f1"] >= 0.8
    assert sum(map(sum, fine["confusion_matrix"])) == metrics["task"]["n_test"]
    for name in ("frozen_encoder_logistic_regression", "behaviour_features_hist_gradient_boosting"):
        assert 0.0 <= metrics["models"][name]["accuracy"] <= 1.0
        assert set(metrics["models"][name]["per_class"]) == set(ARCHETYPES.values())
    assert metrics["training"]["n_steps"] <= 2


def test_metrics_html_is_self_contained_and_escaped(trained: Path) -> None:
    page = (trained / "metrics.html").read_text()
    assert html.escape("Budget & <family>") in page
    assert "<family>" not in page
    for marker in ("<script", "http://", "https://", "src=", "<link"):
        assert marker not in page


def test_predict_unseen_customers(toy: dict[str, Path], trained: Path) -> None:
    out = toy["root"] / "predictions.parquet"
    code = cli(
        ["predict", "--model", str(trained), "--input", str(toy["root"] / "new_events.parquet"),
         "--out", str(out), "--quiet", "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    frame = pl.read_parquet(out)
    probs = [f"prob_{name}" for name in sorted(ARCHETYPES.values())]
    assert frame.columns == ["user_id", "label", "probability", *probs]
    np.testing.assert_allclose(frame.select(probs).to_numpy().sum(axis=1), 1.0, rtol=1e-5)
    truth = pl.read_parquet(toy["root"] / "new_labels.parquet")
    joined = frame.join(truth, on="user_id", suffix="_true")
    assert joined.height == truth.height
    assert (joined["label"] == joined["label_true"]).mean() >= 0.8


def test_loaded_model_predicts_like_the_saved_one(toy: dict[str, Path], trained: Path) -> None:
    from segmenter.data import load_events

    data = load_events(toy["root"] / "new_events.parquet")
    first = CustomerModel.load(trained, device="cpu", show_progress=False).predict(data)
    again = CustomerModel.load(trained, device="cpu", show_progress=False).predict(data)
    assert first.equals(again)


# -- the library on plain texts ---------------------------------------------------------------
TEXTS = {
    "family": ["diapers, baby wipes and pasta", "baby formula, detergent and rice",
               "paper towels, cereal and baby bottle", "dish soap, diapers, olive oil",
               "pacifier, trash bags and tea bags", "snack bars, baby wipes, bleach"],
    "tech": ["gaming mouse and 4k monitor", "mechanical keyboard, ssd drive",
             "wireless earbuds, usb-c charger", "game controller and headset",
             "smartwatch and bluetooth speaker", "rpg video game, gaming chair"],
}  # fmt: skip


def _texts() -> tuple[list[str], list[str]]:
    docs = [t for texts in TEXTS.values() for t in texts]
    return docs, [label for label, texts in TEXTS.items() for _ in texts]


def _tiny(**params: object) -> CustomerClassifier:
    defaults: dict[str, object] = {
        "epochs": 2, "max_steps": 2, "batch_size": 4, "max_length": 16, "device": "cpu",
        "validation_fraction": 0.25, "show_progress": False, "seed": 3,
    }  # fmt: skip
    return CustomerClassifier(**{**defaults, **params})  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # peft's
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_save_load_round_trip_and_seeded_refit(tmp_path: Path, lora: bool) -> None:
    docs, labels = _texts()
    model = _tiny(lora=lora).fit(docs, labels)
    proba = model.predict_proba(docs)
    assert proba.shape == (len(docs), 2)
    assert list(model.classes_) == ["family", "tech"]
    assert model.n_steps_ == 2
    assert (model.predict(docs) == np.array(labels)).mean() >= 0.8
    model.save(tmp_path / "m")
    loaded = CustomerClassifier.load(tmp_path / "m", device="cpu", show_progress=False)
    np.testing.assert_array_equal(loaded.predict_proba(docs), proba)
    with pytest.raises(SegmenterError, match="exists and is not empty"):
        model.save(tmp_path / "m")
    if not lora:  # same texts, labels and seed: identical predictions
        np.testing.assert_array_equal(_tiny().fit(docs, labels).predict_proba(docs), proba)


def test_predictions_frame_columns() -> None:
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    frame = predictions_frame(pl.Series("user_id", ["a", "b"]), proba, np.array(["x", "y"]))
    assert frame["label"].to_list() == ["y", "x"]
    assert frame["probability"].to_list() == [0.8, 0.6]
    assert frame.columns == ["user_id", "label", "probability", "prob_x", "prob_y"]


@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.floats(0.05, 0.5))
@settings(max_examples=60, deadline=None)
def test_stratified_split_partitions_and_keeps_every_class(labels: list[int], frac: float) -> None:
    y = np.array(labels)
    keep, hold = stratified_split(y, frac, seed=0)
    assert np.array_equal(np.sort(np.concatenate([keep, hold])), np.arange(len(y)))
    assert set(y[keep]) == set(y)


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"epochs": 0}, "epochs=0 should be an integer >= 1"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"lr": -1.0}, "lr=-1.0 should be a number > 0"),
        ({"validation_fraction": 0.9}, "validation_fraction=0.9 should be between"),
        ({"class_weight": "auto"}, "class_weight='auto'"),
        ({"head_init": "zeros"}, "head_init='zeros'"),
        ({"device": "tpu"}, "--device: 'tpu'"),
        ({"seed": -1}, "seed=-1"),
    ],
)
def test_bad_parameters(params: dict[str, object], match: str) -> None:
    with pytest.raises(SegmenterError, match=match):
        CustomerClassifier(**params).fit(["a", "b"], ["x", "y"])  # type: ignore[arg-type]


def test_fit_rejects_mismatched_lengths_and_a_single_class() -> None:
    with pytest.raises(SegmenterError, match="differ in length: 2 != 1"):
        CustomerClassifier().fit(["a", "b"], ["x"])
    with pytest.raises(SegmenterError, match="one class only, 'x' \\(2 customers\\)"):
        CustomerClassifier().fit(["a", "b"], ["x", "x"])


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pl.DataFrame({"user_id": [], "label": []}), "is empty: 0 rows"),
        (pl.DataFrame({"customer": ["1"], "label": ["a"]}), "missing column 'user_id'"),
        (pl.DataFrame({"user_id": ["1"], "segment": ["a"]}), "missing column 'label'"),
        (pl.DataFrame({"user_id": ["1", "2"], "label": ["a", None]}), "'label' has 1 null"),
        (pl.DataFrame({"user_id": ["1", "1"], "label": ["a", "b"]}), "'1' has 2 different"),
    ],
)
def test_bad_label_files(tmp_path: Path, frame: pl.DataFrame, match: str) -> None:
    path = tmp_path / "labels.parquet"
    frame.write_parquet(path)
    with pytest.raises(SegmenterError, match=match):
        read_labels(path)


def test_labels_read_csv_and_normalize_ids(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("user_id,tier\n17850.0,gold\n17850.0,gold\n13047,silver\n")
    frame = read_labels(path, label_column="tier")
    assert frame.rows() == [("17850", "gold"), ("13047", "silver")]


def test_unknown_users_are_counted_or_rejected(caplog: pytest.LogCaptureFixture) -> None:
    labels = pl.DataFrame({"user_id": ["a", "b", "zz"], "label": ["x", "y", "x"]})
    with caplog.at_level(logging.WARNING):
        matched = match_users(labels, pl.Series(["a", "b", "c"]))
    assert (matched.n_unknown, matched.frame.height, matched.example_unknown) == (1, 2, "zz")
    assert "1 of 3 labelled users do not appear" in caplog.text
    with pytest.raises(SegmenterError, match="none of the 3 labelled users appear"):
        match_users(labels, pl.Series(["q", "r"]))


def test_class_counts_are_checked() -> None:
    with pytest.raises(SegmenterError, match="one class only"):
        check_classes({"x": 10})
    with pytest.raises(SegmenterError, match="class 'y' has 1 labelled customer;"):
        check_classes({"x": 10, "y": 1})
    check_classes({"x": 10, "y": 2})


def test_labels_from_a_discovery_run(tmp_path: Path) -> None:
    with pytest.raises(SegmenterError, match=r"holds no assignments\.parquet"):
        labels_from_run(tmp_path)
    pl.DataFrame(
        {"user_id": ["a", "b", "c", "d"], "segment": [0, 1, -1, 1],
         "segment_name": ["Bargain hunters", "Loyal", None, "Loyal"]}
    ).write_parquet(tmp_path / "assignments.parquet")  # fmt: skip
    frame = labels_from_run(tmp_path)
    assert frame.rows() == [("a", "Bargain hunters"), ("b", "Loyal"), ("d", "Loyal")]


def test_load_rejects_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(SegmenterError, match="is not a classifier model folder"):
        CustomerModel.load(tmp_path)


def test_cli_errors_are_one_line_with_exit_code_2(
    toy: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["train", "--input", str(toy["events"]), "--labels", str(toy["labels"])]
    cases = [
        ([*base, "--out", str(tmp_path / "a"), "--epochs", "0"], "epochs=0"),
        ([*base, "--out", str(tmp_path / "b"), "--label-column", "tier"], "missing column 'tier'"),
        ([*base, "--out", str(toy["root"]), *FAST], "contains the input"),
        ([*base, "--out", str(toy["root"]), "--force", *FAST], "contains the input"),
        ([*base, "--out", str(tmp_path / "c"), "--test-fraction", "0.9"], "test_fraction=0.9"),
        (
            ["train", "--input", str(toy["events"]), "--labels-from", str(tmp_path / "run")],
            "holds no assignments.parquet",
        ),
        (
            [
                "predict",
                "--model",
                str(toy["root"]),
                "--input",
                str(toy["events"]),
                "--out",
                str(tmp_path / "p.parquet"),
            ],
            "is not a classifier model folder",
        ),
    ]
    for argv, match in cases:
        assert cli([*argv, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert match in err
    assert not any(tmp_path.iterdir())  # nothing written
