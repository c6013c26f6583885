"""Where and how fine-tuning runs: bf16 autocast on CUDA, a seeded torch generator."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def autocast(device: Any) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on a CUDA device; nothing elsewhere (CPU training stays float32).

    Parameters
    ----------
    device : str or torch.device
        Where the model lives (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
    """
    if str(device).startswith("cuda"):
        import torch

        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def seeded(seed: int, device: Any) -> Iterator[None]:
    """Run the block with torch's generators (CPU, and ``device``'s on CUDA) seeded by ``seed``.

    The generators are forked: their state outside the block is what it was before, so the
    library never re-seeds the caller's torch.
    """
    import torch

    name = str(device)
    fork = [torch.device(name).index or 0] if name.startswith("cuda") else []
    with torch.random.fork_rng(devices=fork):
        torch.manual_seed(seed)
        yield
