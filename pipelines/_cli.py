"""Shared CLI plumbing: logging set-up, one-line errors with exit code 2."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from segmenter.errors import SegmenterError


class _Parser(argparse.ArgumentParser):
    pass


def configure_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run_cli(
    parser: argparse.ArgumentParser,
    main: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse, configure logging, run; a :class:`SegmenterError` becomes one line and exit 2."""
    args = parser.parse_args(argv)
    configure_logging(getattr(args, "quiet", False))
    if getattr(args, "quiet", False):
        import os

        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        return main(args)
    except SegmenterError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except FileExistsError as exc:
        print(f"{parser.prog}: error: {exc} exists and is not empty; pass --force", file=sys.stderr)
        return 2
