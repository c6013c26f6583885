"""Supervised customer classification: fine-tune the encoder on labelled customers.

python -m pipelines.classify train --input EVENTS --labels labels.parquet --out DIR
python -m pipelines.classify train --labels sample_data/labels.parquet --label-column archetype
python -m pipelines.classify train --input EVENTS --labels-from reports/RUN --out DIR --lora
python -m pipelines.classify predict --model DIR --input EVENTS --out predictions.parquet

train writes DIR/ with the fine-tuned encoder, the head, the document recipe, metrics.json and
metrics.html (test-split metrics of the fine-tuned model and of two baselines); predict writes
user_id, label, probability and prob_<class> per class.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines._cli import run_cli
from segmenter import io
from segmenter.data import load_events, parse_columns
from segmenter.embed import DEFAULT_ENCODER
from segmenter.errors import SegmenterError
from segmenter.outputs import Kind, check_location

if TYPE_CHECKING:
    from segmenter.data import EventData

logger = logging.getLogger("pipelines.classify")

SAMPLE_DATA = Path("sample_data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.classify",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="fine-tune on labelled customers")
    _data_options(train)
    labels = train.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help="parquet/CSV with user_id and a label column")
    labels.add_argument(
        "--labels-from", help="a discovery run folder: train on its segments (outliers left out)"
    )
    train.add_argument("--label-column", default="label", help="label column of --labels")
    train.add_argument("--out", help="model folder (default reports/classify-<timestamp>/)")
    train.add_argument("--encoder", default=DEFAULT_ENCODER, help="sentence-transformers folder")
    train.add_argument("--seed", type=int, default=0, help="seed of every random step")
    train.add_argument("--epochs", type=int, default=4, help="passes over the training set")
    train.add_argument("--lr", type=float, help="encoder learning rate (5e-5; LoRA 5e-4)")
    train.add_argument("--head-lr", type=float, help="head learning rate (default: --lr)")
    train.add_argument(
        "--head-init",
        choices=("probe", "random"),
        default="probe",
        help="start the head from a logistic regression on frozen embeddings, or at random",
    )
    train.add_argument("--batch-size", type=int, default=16, help="customers per step")
    train.add_argument("--max-steps", type=int, default=1000, help="cap on optimizer steps")
    train.add_argument("--lora", action="store_true", help="train LoRA adapters (peft) only")
    train.add_argument("--lora-rank", type=int, default=8, help="rank of the LoRA adapters")
    train.add_argument("--test-fraction", type=float, default=0.2, help="held-out test share")
    train.add_argument(
        "--validation-fraction", type=float, default=0.15, help="early-stopping share"
    )
    train.add_argument("--max-tokens", type=int, default=128, help="tokens per document")
    predict = commands.add_parser("predict", help="classify customers with a trained model")
    _data_options(predict)
    predict.add_argument("--model", required=True, help="folder written by train")
    predict.add_argument(
        "--out", help="predictions parquet (default reports/predictions-<timestamp>.parquet)"
    )
    predict.add_argument("--batch-size", type=int, help="customers per inference batch")
    return parser


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="events: parquet, CSV(.gz) or folder (default sample_data)")
    parser.add_argument("--users", help="users table keyed by user_id")
    parser.add_argument("--items", help="items table keyed by item_id")
    parser.add_argument("--columns", help="canonical=theirs,... column mapping")
    parser.add_argument("--preset", help="named column layout, e.g. online-retail")
    parser.add_argument("--drop-invalid", action="store_true", help="drop rows without user id")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")


def main(args: argparse.Namespace) -> int:
    return train(args) if args.command == "train" else predict(args)


# segmenter.classify (torch, tqdm) is imported inside the commands, after run_cli has set
# TQDM_DISABLE for --quiet: tqdm reads its environment variables when it is imported.
def train(args: argparse.Namespace) -> int:
    from segmenter.classify import CustomerClassifier, labels_from_run, read_labels
    from segmenter.classify.workflow import save_run, train_on_events

    # peft calls a transformers method deprecated in transformers 5; nothing for users to do
    warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
    classifier = CustomerClassifier(
        encoder=args.encoder,
        lora=args.lora,
        lora_rank=args.lora_rank,
        epochs=args.epochs,
        lr=args.lr,
        head_lr=args.head_lr,
        head_init=args.head_init,
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        validation_fraction=args.validation_fraction,
        device=args.device,
        seed=args.seed,
        show_progress=not args.quiet,
    )
    classifier.check_params()
    out = Path(args.out) if args.out else _default_out("classify-{}")
    _check_out(args, out, "classifier")
    if args.labels:
        labels, source = read_labels(args.labels, label_column=args.label_column), "--labels"
    else:
        labels, source = labels_from_run(args.labels_from), "--labels-from"
    data = _load(args)
    run = train_on_events(
        data,
        labels,
        classifier,
        test_fraction=args.test_fraction,
        max_tokens=args.max_tokens,
        source=source,
    )
    run.metrics["input"] = data.summary()
    save_run(run, out, force=args.force)
    for name, result in run.metrics["models"].items():
        logger.info(
            "%s: test accuracy %.3f, macro-F1 %.3f", name, result["accuracy"], result["macro_f1"]
        )
    logger.info("wrote %s (metrics.json, metrics.html)", out)
    return 0


def predict(args: argparse.Namespace) -> int:
    from segmenter.classify.workflow import CustomerModel

    if args.batch_size is not None and args.batch_size < 1:
        raise SegmenterError(f"--batch-size={args.batch_size} should be an integer >= 1")
    out = Path(args.out) if args.out else _default_out("predictions-{}.parquet")
    _check_out(args, out, "predictions")
    model = CustomerModel.load(args.model, device=args.device, show_progress=not args.quiet)
    data = _load(args)
    if args.batch_size is not None:
        model.classifier.batch_size = args.batch_size
    frame = model.predict(data)
    io.write_parquet(frame, out)
    logger.info("wrote %s (%d customers)", out, frame.height)
    return 0


def _load(args: argparse.Namespace) -> EventData:
    """Events from --input, or the sample data with its users and items tables."""
    users, items = args.users, args.items
    if args.input is None:
        events = SAMPLE_DATA / "events.parquet"
        users = users or _existing(SAMPLE_DATA / "users.parquet")
        items = items or _existing(SAMPLE_DATA / "items.parquet")
    else:
        events = Path(args.input)
    return load_events(
        events,
        users=users,
        items=items,
        columns=parse_columns(args.columns),
        preset=args.preset,
        drop_invalid=args.drop_invalid,
    )


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


def _default_out(pattern: str) -> Path:
    return Path("reports") / pattern.format(datetime.now().strftime("%Y%m%d-%H%M%S"))


def _check_out(args: argparse.Namespace, path: Path, kind: Kind) -> None:
    """Refuse, before any work, an --out that is an input or not ours to replace."""
    names = ("input", "users", "items", "labels", "labels_from")
    inputs = [getattr(args, name, None) for name in names]
    models = [args.model] if getattr(args, "model", None) else []
    check_location(path, option="--out", inputs=inputs, kind=kind, force=args.force, models=models)


def cli(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    return run_cli(build_parser(), main, argv)


if __name__ == "__main__":
    raise SystemExit(cli())
