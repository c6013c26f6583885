"""The hostile-input suite: bad inputs and faults as a hostile new user would try them.

Every case runs a command in-process and checks the contract: exit code 2 and one line naming
the problem, no traceback, no output written, and the inputs unchanged (by sha256).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import assign, discover
from pipelines._cli import run_cli
from segmenter.synthetic import generate

Build = Callable[[Path], list[str]]

EMAIL, PHONE = "jane.doe@example.com", "+44 20 7946 0958"
IBAN, CARD = "DE89 3704 0044 0532 0130 00", "4111 1111 1111 1111"
PLANTED = (EMAIL, PHONE, IBAN, CARD, "DE89370400440532013000", "4111111111111111", "7946 0958")


class Payload:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch '{self.marker}'",)


def cli(module: object, argv: list[str]) -> tuple[int, str]:
    """Run a command's main in-process: exit code and what it printed to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run_cli(module.build_parser(), module.main, argv)  # type: ignore[attr-defined]
    return code, err.getvalue()


def digest(root: Path, skip: Path | None = None) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and (skip is None or not path.is_relative_to(skip)):
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def tables() -> dict[str, pl.DataFrame]:
    return generate(60, seed=11)


def _events(tables: dict[str, pl.DataFrame], **changes: object) -> pl.DataFrame:
    ev = tables["events"]
    for column, (row, value) in changes.items():  # type: ignore[misc]
        values = ev[column].to_list()
        values[row] = value
        ev = ev.with_columns(pl.Series(column, values, dtype=ev[column].dtype))
    return ev


def _write(frame: pl.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return path


def _case_builders(tables: dict[str, pl.DataFrame]) -> dict[str, tuple[Build, str]]:
    ev = tables["events"]

    def events_in(root: Path) -> Path:
        return _write(ev, root / "data" / "events.parquet")

    def base(root: Path, *extra: str) -> list[str]:
        return ["--input", str(events_in(root)), "--quiet", "--no-cache", *extra]

    def numeric(column: str, value: float) -> Build:
        def build(root: Path) -> list[str]:
            frame = _events(tables, **{column: (5, value)})
            path = _write(frame, root / "data" / "events.parquet")
            return ["--input", str(path), "--quiet", "--no-cache", "--out", str(root / "out")]

        return build

    def stale_lock(root: Path) -> list[str]:
        (root / ".out.lock").write_text(f"{os.getppid()}\n")  # a live process holds it
        return base(root, "--out", str(root / "out"))

    def not_a_run(root: Path) -> list[str]:
        (root / "mine").mkdir()
        (root / "mine" / "thesis.txt").write_text("years of work")
        return base(root, "--out", str(root / "mine"), "--force")

    def list_ids(root: Path) -> list[str]:
        frame = ev.with_columns(pl.col("user_id").map_elements(lambda v: [v], pl.List(pl.String)))
        path = _write(frame, root / "data" / "events.parquet")
        return ["--input", str(path), "--quiet", "--out", str(root / "out")]

    def csv_in_shards(root: Path) -> list[str]:
        folder = root / "data" / "shards"
        _write(ev.head(10), folder / "part-0.parquet")
        ev.write_csv(folder / "part-1.csv")
        return ["--input", str(folder), "--quiet", "--out", str(root / "out")]

    def identical(root: Path) -> list[str]:
        one = ev.filter(pl.col("user_id") == ev["user_id"][0])
        frame = pl.concat([one.with_columns(pl.lit(f"U{i}").alias("user_id")) for i in range(40)])
        path = _write(frame, root / "data" / "events.parquet")
        return ["--input", str(path), "--quiet", "--k", "3", "--out", str(root / "out")]

    def pickled_encoder(root: Path) -> list[str]:
        folder = root / "enc"
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(root / "pwned")))
        return base(root, "--encoder", str(folder), "--out", str(root / "o"))

    def file_parent(root: Path) -> list[str]:
        return base(root, "--out", str(root / "data" / "events.parquet" / "run"))

    def cache_is_file(root: Path) -> list[str]:
        (root / "cachefile").write_text("x")
        args = base(root, "--out", str(root / "out"))
        args.remove("--no-cache")
        return [*args, "--cache", str(root / "cachefile")]

    return {
        "force-on-input-folder": (
            lambda r: base(r, "--out", str(r / "data"), "--force"),
            "contains the input",
        ),
        "force-on-input-parent": (lambda r: base(r, "--out", str(r), "--force"), "the input"),
        "out-is-input-file": (
            lambda r: base(r, "--out", str(r / "data" / "events.parquet"), "--force"),
            "is the input",
        ),
        "out-inside-input-folder": (
            lambda r: [
                "--input",
                str(events_in(r).parent),
                "--quiet",
                "--out",
                str(r / "data" / "run"),
            ],
            "is inside the input",
        ),
        "out-under-a-file": (file_parent, "which is a file"),
        "force-on-foreign-folder": (not_a_run, "not a run folder"),
        "second-run-same-out": (stale_lock, "being written by another run"),
        "cache-is-a-file": (cache_is_file, "is a file"),
        "amount-nan": (numeric("amount", float("nan")), "column 'amount': nan (row 5)"),
        "amount-inf": (numeric("amount", float("inf")), "column 'amount': inf (row 5)"),
        "amount-huge": (numeric("amount", 1e308), "column 'amount'"),
        "quantity-minus-inf": (numeric("quantity", float("-inf")), "column 'quantity'"),
        "rating-1e9": (numeric("rating", 1e9), "column 'rating': 1000000000.0 (row 5)"),
        "user-id-lists": (list_ids, "column 'user_id' holds List"),
        "csv-in-shard-folder": (csv_in_shards, "holds CSV files"),
        "k-equals-customers": (lambda r: base(r, "--k", "60", "--out", str(r / "o")), "60"),
        "identical-customers": (identical, "identical events"),
        "bad-as-of": (lambda r: base(r, "--as-of", "yesterday", "--out", str(r / "o")), "--as-of"),
        "pickled-encoder": (pickled_encoder, "pickle-format file"),
        "hub-encoder": (
            lambda r: base(r, "--encoder", "BAAI/bge-small-en", "--out", str(r / "o")),
            "not a local folder",
        ),
    }


CASES = sorted(_case_builders(generate(60, seed=11)))


@pytest.mark.parametrize("case", CASES)
def test_hostile_discover_inputs_fail_cleanly(
    case: str, tables: dict[str, pl.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    build, fragment = _case_builders(tables)[case]
    argv = build(tmp_path)
    before = digest(tmp_path)
    code, err = cli(discover, argv)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("python -m pipelines.discover: error:"), err
    assert fragment in err
    assert "Traceback" not in err
    assert digest(tmp_path) == before  # nothing written, nothing changed, nothing deleted
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == ([".out.lock"] if case == "second-run-same-out" else [])


def test_out_dot_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("keep me")
    code, err = cli(discover, ["--out", ".", "--force", "--quiet"])
    assert code == 2 and "current folder" in err
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_read_only_out_is_refused_before_work(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, err = cli(discover, ["--out", str(locked / "run"), "--quiet"])
    finally:
        locked.chmod(0o755)
    assert code == 2 and "cannot write under" in err


def test_stale_temporaries_of_a_killed_run_are_removed(
    tables: dict[str, pl.DataFrame], tmp_path: Path
) -> None:
    stale = tmp_path / ".out.abcd1234.tmp"
    (stale / "model").mkdir(parents=True)
    other = tmp_path / ".outer.abcd1234.tmp"  # another name's: not ours to remove
    other.mkdir()
    path = _write(_events(tables, amount=(3, float("nan"))), tmp_path / "ev.parquet")
    code, _ = cli(discover, ["--input", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2
    assert not stale.exists() and other.exists()
    assert not (tmp_path / ".out.lock").exists()


def test_drop_invalid_drops_and_counts_bad_numbers(tables: dict[str, pl.DataFrame]) -> None:
    from segmenter.data import load_events

    frame = _events(tables, amount=(3, float("nan")))
    frame = frame.with_columns(
        pl.Series("rating", [1e9 if i == 7 else r for i, r in enumerate(frame["rating"])])
    )
    data = load_events(frame, drop_invalid=True)
    assert data.events.height == frame.height - 2
    assert sum(data.dropped.values()) == 2


@pytest.mark.parametrize("ids", [["7", "7.0", "A"], ["7", "7.00", "8"], ["7.0", "7", "x.0"]])
def test_integer_like_ids_do_not_depend_on_the_other_ids(ids: list[str]) -> None:
    from segmenter.data import normalize_id

    out = normalize_id(pl.Series("user_id", ids)).to_list()
    assert out[0] == out[1] == "7"
    assert normalize_id(pl.Series(["7.5", "007", "A.0"])).to_list() == ["7.5", "007", "A.0"]


def test_semicolon_csv_is_read(tables: dict[str, pl.DataFrame], tmp_path: Path) -> None:
    from segmenter.data import load_events

    path = tmp_path / "events.csv"
    tables["events"].head(50).write_csv(path, separator=";")
    assert load_events(path).events.height == 50


def test_names_do_not_lie_about_value() -> None:
    from segmenter.profile import name_segments

    features = pl.DataFrame(
        {
            "user_id": list("abcdefgh"),
            "monetary": [0.0, 0.0, -30.0, -20.0, 50.0, 60.0, 400.0, 500.0],
            "frequency": [0.0, 0.0, 0.0, 0.0, 2.0, 3.0, 5.0, 6.0],
        }
    )
    names = name_segments(features, np.array([0, 0, 1, 1, 2, 2, 3, 3]))
    assert names[0] == "No purchases"
    assert names[1] == "Returns only"
    assert "value" in names[3].lower()


# -- one real run with everything a careless file holds -----------------------------------------
@pytest.fixture(scope="module")
def hostile_run(
    tables: dict[str, pl.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hostile")
    ev = tables["events"]
    n = ev.height
    pii = [EMAIL, PHONE, IBAN, CARD]

    def plant(column: str) -> pl.Expr:
        return (
            pl.when(pl.int_range(pl.len()) % 7 == 0)
            .then(pl.col(column).fill_null("x") + " " + pl.lit(pii[hash(column) % 4]) + "\x00\x1b")
            .otherwise(pl.col(column))
            .alias(column)
        )

    ev = ev.with_columns(plant(c) for c in ("item_name", "category", "channel"))
    ev = ev.with_columns(
        pl.Series("text", [f"call me {pii[i % 4]} or mail {EMAIL}" for i in range(n)])
    )
    future = ev.head(1).with_columns(pl.lit(datetime(9999, 12, 31)).alias("timestamp"))
    only_returns = ev.head(2).with_columns(
        pl.lit("R1").alias("user_id"), pl.lit("return").alias("event_type")
    )
    ev = pl.concat([ev, future, ev.head(3), only_returns])  # 3 exact duplicates
    users = tables["users"].with_columns(
        (pl.col("country") + " " + pl.lit(EMAIL)).alias("country"),
        pl.lit(PHONE).alias("phone"),
        pl.lit(IBAN).alias("bank"),
    )
    _write(ev, root / "events.parquet")
    _write(users, root / "users.parquet")
    out = root / "run"
    code, err = cli(
        discover,
        ["--input", str(root / "events.parquet"), "--users", str(root / "users.parquet"),
         "--k", "3", "--out", str(out), "--quiet", "--cache", str(root / "cache")],
    )  # fmt: skip
    assert code == 0, err
    return root, out


def _text_of(path: Path) -> str:
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
        return "\n".join(str(row) for row in frame.rows())
    return path.read_bytes().decode("utf-8", errors="replace")


@pytest.mark.slow
def test_no_personal_data_or_control_bytes_reach_any_output(hostile_run: tuple[Path, Path]) -> None:
    _, out = hostile_run
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files
    for path in files:
        text = _text_of(path)
        for secret in PLANTED:
            assert secret not in text, f"{secret!r} leaked into {path.relative_to(out)}"
        if path.suffix in (".parquet", ".json"):
            assert "\x00" not in text and "\x1b" not in text, path


@pytest.mark.slow
def test_sanity_warnings_reach_run_json_and_report(hostile_run: tuple[Path, Path]) -> None:
    _, out = hostile_run
    meta = json.loads((out / "run.json").read_text())
    warnings = " ".join(meta["data"]["warnings"])
    assert "dated after" in warnings and "9999" in warnings
    assert "exact duplicates" in warnings and "--dedupe" in warnings
    assert "no purchases" in warnings
    assert meta["data"]["last_event"] < "9999"
    assert "dated after" in (out / "report.html").read_text()


@pytest.mark.slow
def test_assign_guards_its_inputs_and_the_model(
    hostile_run: tuple[Path, Path], tmp_path: Path
) -> None:
    root, out = hostile_run
    events = root / "events.parquet"
    model = out / "model"
    before = digest(root, skip=root / "cache")
    cases = [
        (["--out", str(events), "--force"], "is the input"),
        (["--out", str(tmp_path)], "should end in .parquet"),
        (["--out", str(model)], "should end in .parquet"),
    ]
    (tmp_path / "dir.parquet").mkdir()
    cases.append((["--out", str(tmp_path / "dir.parquet")], "is a folder"))
    pl.DataFrame({"a": [1]}).write_parquet(tmp_path / "mine.parquet")
    cases.append(
        (["--out", str(tmp_path / "mine.parquet"), "--force"], "is not assignments written by")
    )
    for extra, fragment in cases:
        code, err = cli(assign, ["--model", str(model), "--input", str(events), "--quiet", *extra])
        assert code == 2 and fragment in err and err.count("\n") == 1, (extra, err)
    assert digest(root, skip=root / "cache") == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage", ["missing-key", "truncated", "missing-file", "hub-encoder", "pickled-encoder"]
)
def test_damaged_model_folder_is_one_line(
    hostile_run: tuple[Path, Path], tmp_path: Path, damage: str
) -> None:
    from segmenter.modelfolder import MODEL_FILE

    root, out = hostile_run
    model = tmp_path / "model"
    shutil.copytree(out / "model", model)
    state_path = model / MODEL_FILE
    state = json.loads(state_path.read_text())
    if damage == "missing-key":
        del state["encoder"]
        state_path.write_text(json.dumps(state))
    elif damage == "truncated":
        state_path.write_text(state_path.read_text()[:200])
    elif damage == "missing-file":
        victim = next(p for p in sorted(model.rglob("*")) if p.is_file() and p != state_path)
        victim.unlink()
    elif damage == "hub-encoder":
        state["encoder"]["path"] = "BAAI/bge-small-en"
        state_path.write_text(json.dumps(state))
    else:  # a fine-tuned encoder folder whose weights unpickle a payload
        (model / "encoder").mkdir()
        (model / "encoder" / "config.json").write_text("{}")
        (model / "encoder" / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(tmp_path / "x")))
        state["encoder"]["path"] = "encoder"
        state_path.write_text(json.dumps(state))
    code, err = cli(
        assign,
        ["--model", str(model), "--input", str(root / "events.parquet"), "--quiet",
         "--no-cache", "--out", str(tmp_path / "a.parquet")],
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert not (tmp_path / "a.parquet").exists()
    assert not (tmp_path / "x").exists()  # no code from the folder ran


# -- any frame: it runs, or it fails with exit 2 and one line ------------------------------------
#: Mostly plain values, so that many frames run through; one cell may then be poisoned.
_VALUES = st.one_of(st.floats(-50, 500), st.none())
_POISON = st.sampled_from(
    [("amount", float("nan")), ("amount", float("inf")), ("quantity", -1e308),
     ("rating", 1e9), ("user_id", ""), ("user_id", None), ("timestamp", "9999-12-31"),
     ("timestamp", "not a date"), ("timestamp", "2020-02-30"), ("item_name", "a\x00\x1b b")]
)  # fmt: skip


class HashEncoder:
    """A stand-in encoder: a deterministic unit vector per text, no model."""

    identity = "hash:v1"

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = [
            np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(
                size=8
            )
            for t in texts
        ]
        out = np.array(rows, dtype=np.float32).reshape(len(texts), 8)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@st.composite
def event_frames(draw: st.DrawFn) -> pl.DataFrame:
    n = draw(st.integers(1, 30))
    ids = st.sampled_from(["1", "1.0", "2", "x", " 3 ", "7.00", "7", "8", "9", "y"])
    kinds = st.sampled_from(["purchase", "purchase", "return", "view", None])
    days = draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n))
    columns: dict[str, list[object]] = {
        "user_id": draw(st.lists(ids, min_size=n, max_size=n)),
        "timestamp": [str(np.datetime64("2001-01-01") + d) for d in days],
        "event_type": draw(st.lists(kinds, min_size=n, max_size=n)),
        "amount": draw(st.lists(_VALUES, min_size=n, max_size=n)),
        "quantity": draw(st.lists(_VALUES, min_size=n, max_size=n)),
        "rating": draw(st.lists(st.one_of(st.none(), st.floats(1, 5)), min_size=n, max_size=n)),
        "item_name": draw(st.lists(st.text(max_size=12), min_size=n, max_size=n)),
    }
    if draw(st.booleans()):
        column, value = draw(_POISON)
        columns[column][draw(st.integers(0, n - 1))] = value
    return pl.DataFrame(
        columns,
        schema_overrides={"amount": pl.Float64, "quantity": pl.Float64, "rating": pl.Float64},
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frame=event_frames())
def test_any_event_frame_runs_or_fails_in_one_line(frame: pl.DataFrame, tmp_path: Path) -> None:
    """The data stages up to the segments (a fake encoder stands in for the real one)."""
    import argparse

    from pipelines._cli import load_from_args
    from segmenter.config import SegmenterConfig
    from segmenter.errors import SegmenterError
    from segmenter.model import Segmenter
    from segmenter.sanity import check_segmentable

    path = tmp_path / "events.parquet"
    frame.write_parquet(path)
    args = discover.build_parser().parse_args(["--input", str(path), "--no-cache", "--k", "2"])
    config = SegmenterConfig(k=2, umap_dims=0, n_restarts=2, value_tiers=1)

    def main(ns: argparse.Namespace) -> int:
        data = load_from_args(ns)
        check_segmentable(data, config.k, config.k_range)
        Segmenter(config, encoder=HashEncoder(), progress=False).fit(data)
        return 0

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SegmenterError as exc:
            code, message = 2, str(exc)
            assert "\n" not in message and message
    assert code in (0, 2)


@pytest.mark.parametrize(
    ("plant", "fragment"),
    [
        ({"pytorch_model.bin": b"pickle"}, "pickle-format file"),
        ({"sub/optimizer.pt": b"pickle"}, "pickle-format file"),
        ({"modules.json": b'[{"type": "os.system", "path": ""}]'}, "module type 'os.system'"),
        ({"config.json": b'{"auto_map": {"AutoModel": "evil.Model"}}'}, "auto_map"),
    ],
)
def test_every_encoder_loader_refuses_a_hostile_folder(
    plant: dict[str, bytes], fragment: str, tmp_path: Path
) -> None:
    """The loader behind fine-tuned encoders and classify models, and --encoder's check."""
    from segmenter.embed import resolve_model_path
    from segmenter.errors import SegmenterError
    from segmenter.finetune.encoder import load_sentence_transformer

    (tmp_path / "config.json").write_text("{}")
    for name, payload in plant.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(payload)
    with pytest.raises(SegmenterError, match=fragment):
        load_sentence_transformer(tmp_path, "cpu")
    with pytest.raises(SegmenterError, match=fragment):
        resolve_model_path(tmp_path)
    with pytest.raises(SegmenterError, match="not a local folder"):
        load_sentence_transformer("BAAI/bge-small-en", "cpu")
