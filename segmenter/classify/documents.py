"""Customer documents for classification, built the same way at training and prediction time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from segmenter.data import EventData
from segmenter.documents import DocumentBuilder
from segmenter.embed import resolve_model_path
from segmenter.features import behaviour, top_channels


def encoder_tokenizer(encoder: str | os.PathLike[str] | None) -> Path | None:
    """``tokenizer.json`` of a local encoder folder, or None (the packaged tokenizer)."""
    path = Path(resolve_model_path(encoder)) / "tokenizer.json"
    return path if path.is_file() else None


@dataclass(frozen=True)
class DocumentRecipe:
    """The channels that get feature columns and the fitted :class:`DocumentBuilder`.

    Attributes
    ----------
    channels : tuple of str
        Channels with a ``share_channel_<name>`` feature, fixed at training time.
    builder : DocumentBuilder
        Fitted serializer (quantile bins, IDF, attributes) of the training customers.
    """

    channels: tuple[str, ...]
    builder: DocumentBuilder

    @classmethod
    def fit(
        cls,
        data: EventData,
        *,
        max_tokens: int = 128,
        tokenizer_path: str | os.PathLike[str] | None = None,
        as_of: datetime | None = None,
    ) -> tuple[DocumentRecipe, pl.DataFrame, pl.DataFrame]:
        """Fit on these customers and build their features and documents.

        Returns
        -------
        recipe : DocumentRecipe
        features : polars.DataFrame
            ``user_id`` + behaviour features, sorted by user_id.
        documents : polars.DataFrame
            ``user_id``, ``document`` in the same order.
        """
        channels = tuple(top_channels(data.events))
        features = behaviour(data.events, as_of=as_of, channels=channels)
        builder = DocumentBuilder(max_tokens=max_tokens, tokenizer_path=tokenizer_path)
        documents = builder.fit_transform(data.events, features, data.users)
        return cls(channels, builder), features, documents

    def build(
        self, data: EventData, *, as_of: datetime | None = None
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Features and documents of (possibly new) customers, as :meth:`fit` returns them."""
        features = behaviour(data.events, as_of=as_of, channels=self.channels)
        return features, self.builder.transform(data.events, features, data.users)

    def state(self) -> dict[str, Any]:
        """JSON-able state; the tokenizer path is left out (it is the saved encoder's)."""
        builder = self.builder.state()
        builder["params"] = {**builder["params"], "tokenizer_path": None}
        return {"channels": list(self.channels), "builder": builder}

    @classmethod
    def from_state(
        cls, state: dict[str, Any], *, tokenizer_path: str | os.PathLike[str] | None = None
    ) -> DocumentRecipe:
        """Rebuild from :meth:`state`, counting tokens with ``tokenizer_path``."""
        builder = dict(state["builder"])
        builder["params"] = {**builder["params"], "tokenizer_path": tokenizer_path}
        return cls(tuple(state["channels"]), DocumentBuilder.from_state(builder))
