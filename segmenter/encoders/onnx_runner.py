"""Sentence embeddings from a cached ONNX file with ONNX Runtime on the CPU."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class OnnxRunner:
    """Tokenize with the model's own (fast) tokenizer and run the ONNX graph.

    Parameters
    ----------
    onnx_file : path
        A file from :func:`segmenter.encoders.onnx_files.load_model` (outputs unit vectors).
    model_path : str
        The sentence-transformers folder (its tokenizer).
    max_length : int
        Token budget, the sentence-transformers model's ``max_seq_length``.
    threads : int, optional
        ONNX Runtime intra-op threads (default: the CPUs this process may use).
    """

    def __init__(
        self, onnx_file: Path, model_path: str, max_length: int, threads: int | None = None
    ) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        local = Path(model_path).exists()
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=local)
        self.max_length = max_length
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
            # like torch's OpenMP threads: do not spin while waiting on cores shared with others
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.dim = int(self.session.get_outputs()[0].shape[1])

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit vectors of shape (n_texts, dim), float32; batches of similar length."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            tokens: Any = self.tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True,
                max_length=self.max_length, return_tensors="np",
            )  # fmt: skip
            feed = {name: tokens[name].astype(np.int64) for name in self.inputs}
            out[rows] = self.session.run(None, feed)[0]
        return out
