"""The one exception type the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations


class SegmenterError(ValueError):
    """Bad input or a bad option.

    The message is one line naming the column or option, the offending value and what is
    allowed. Raised before any state changes or any output file is written.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def preview(values: object, limit: int = 8) -> str:
    """Render a short list of allowed or present values for an error message."""
    items = [str(v) for v in values]  # type: ignore[attr-defined]
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"
