"""Model folders as data: each stage round-trips through JSON + .npy, a loaded model places the
training customers where the fit did, and a folder carrying pickles runs nothing."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from pipelines._cli import run_cli
from pipelines.assign import build_parser, main
from segmenter.cluster import DensityClusterer, KMeansClusterer
from segmenter.config import SegmenterConfig
from segmenter.data import EventData
from segmenter.errors import SegmenterError
from segmenter.fuse import FeatureScaler
from segmenter.model import Segmenter
from segmenter.persist import FORMAT, MODEL_FILE, load_stage, save_stage
from segmenter.reduce import Reducer


class WordEncoder:
    """Sum of seeded random vectors of a text's words: similar documents land close."""

    identity = "test:words"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 16), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
                out[i] += np.random.default_rng(seed).normal(size=16)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def _blobs(n: int = 600, dims: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(4, dims))
    return (centres[rng.integers(0, 4, n)] + rng.normal(size=(n, dims))).astype(np.float32)


def _roundtrip(stage: object, tmp_path: Path, cls: type) -> object:
    entry = save_stage(tmp_path, "stage", stage)  # type: ignore[arg-type]
    entry = json.loads(json.dumps(entry))  # what the model file keeps
    return load_stage(tmp_path, "stage", entry, cls)


def test_pca_from_arrays_matches_sklearn(tmp_path: Path) -> None:
    from sklearn.decomposition import PCA

    X, new = _blobs(300, 40), _blobs(50, 40, seed=1)
    reducer = Reducer(pca_dims=8, umap_dims=0, random_state=0)
    reducer.fit_transform(X)
    sk = PCA(8, svd_solver="randomized", random_state=0).fit(X)
    loaded = _roundtrip(reducer, tmp_path, Reducer)
    np.testing.assert_allclose(loaded.transform(new), sk.transform(new), rtol=0, atol=1e-5)  # type: ignore[attr-defined]
    assert np.array_equal(loaded.transform(new), reducer.transform(new))  # type: ignore[attr-defined]


def test_umap_stage_reloads_and_keeps_training_coordinates(tmp_path: Path) -> None:
    X = _blobs(400)
    reducer = Reducer(pca_dims=10, umap_dims=3, n_neighbors=10, random_state=0)
    fitted = reducer.fit_transform(X)
    loaded = _roundtrip(reducer, tmp_path, Reducer)
    assert np.array_equal(loaded.transform(X), fitted)  # type: ignore[attr-defined]
    # new points from the same blobs land next to their blob's training points
    new = X[:50] + np.random.default_rng(1).normal(scale=0.05, size=(50, X.shape[1]))
    placed = loaded.transform(new.astype(np.float32))  # type: ignore[attr-defined]
    spread = np.linalg.norm(fitted - fitted.mean(axis=0), axis=1).mean()
    assert np.median(np.linalg.norm(placed - fitted[:50], axis=1)) < 0.1 * spread


def test_sampled_umap_stores_only_the_sample(tmp_path: Path) -> None:
    X = _blobs(300)
    reducer = Reducer(pca_dims=0, umap_dims=2, sample_size=120, random_state=0)
    fitted = reducer.fit_transform(X)
    loaded = _roundtrip(reducer, tmp_path, Reducer)
    assert loaded.umap_.anchors.shape == (120, X.shape[1])  # type: ignore[attr-defined]
    assert np.array_equal(loaded.transform(X), fitted)  # type: ignore[attr-defined]


def test_hdbscan_prediction_from_arrays_matches_approximate_predict(tmp_path: Path) -> None:
    import hdbscan

    X, new = _blobs(500, 5), _blobs(200, 5, seed=0)[:200] + 0.5
    clusterer = DensityClusterer(min_cluster_size=15).fit(X)
    reference = hdbscan.HDBSCAN(min_cluster_size=15, prediction_data=True, core_dist_n_jobs=1)
    reference.fit(X.astype(np.float64))
    raw, strength = hdbscan.approximate_predict(reference, new.astype(np.float64))
    # our ids renumber hdbscan's by size: read the renaming off the training labels
    rename = dict(zip(reference.labels_.tolist(), clusterer.labels_.tolist(), strict=True))
    expected = np.array([rename.get(int(v), -1) for v in raw])
    loaded = _roundtrip(clusterer, tmp_path, DensityClusterer)
    labels, confidence, _ = loaded.predict(new)  # type: ignore[attr-defined]
    assert (labels >= 0).mean() > 0.5
    assert np.array_equal(labels, expected)
    np.testing.assert_allclose(confidence, strength, atol=1e-5)


def test_kmeans_and_scaler_round_trip(tmp_path: Path, small_features) -> None:  # type: ignore[no-untyped-def]
    X = _blobs()
    km = KMeansClusterer(4, random_state=0).fit(X)
    loaded = _roundtrip(km, tmp_path, KMeansClusterer)
    for a, b in zip(km.predict(X), loaded.predict(X), strict=True):  # type: ignore[attr-defined]
        assert np.array_equal(a, b)
    scaler = FeatureScaler().fit(small_features)
    again = _roundtrip(scaler, tmp_path, FeatureScaler)
    assert np.array_equal(again.transform(small_features), scaler.transform(small_features))  # type: ignore[attr-defined]


@pytest.fixture(scope="module", params=["kmeans", "hdbscan"])
def saved(
    request: pytest.FixtureRequest, small_data: EventData, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Segmenter, Path]:
    config = SegmenterConfig(k=4, seed=0, method=request.param, min_cluster_size=15)
    model = Segmenter(config, encoder=WordEncoder(), progress=False).fit(small_data)
    folder = tmp_path_factory.mktemp("model") / "model"
    model.save(folder)
    return model, folder


def test_loaded_model_reassigns_training_customers(
    saved: tuple[Segmenter, Path], small_data: EventData
) -> None:
    model, folder = saved
    assert not list(folder.glob("*.joblib")) and not list(folder.glob("*.pkl"))
    state = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    fused = {"reducer"} if model.config_.method == "hdbscan" else set()
    assert state["format"] == FORMAT and set(state["stages"]) == {
        "scaler", "value_axis", "text_reducer", "map", "clusterer", "taste", "reference",
        *fused,
    }  # fmt: skip
    loaded = Segmenter.load(folder, encoder=WordEncoder(), progress=False)
    again = loaded.predict(small_data)
    fit = model.assignments_
    assert again["user_id"].equals(fit["user_id"])
    assert (again["segment"] == fit["segment"]).mean() >= 0.99
    assert again["value_tier"].equals(fit["value_tier"])
    assert (again["taste_group"] == fit["taste_group"]).mean() >= 0.99
    np.testing.assert_allclose(again["map_x"].to_numpy(), fit["map_x"].to_numpy(), atol=1e-5)


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    target.mkdir()
    for path in folder.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def _edit_model_file(folder: Path, **changes: object) -> None:
    state = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    state.update(changes)
    (folder / MODEL_FILE).write_text(json.dumps(state), encoding="utf-8")


class Payload:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch '{self.marker}'",)


def _plant(folder: Path, marker: Path, how: str) -> None:
    mean = folder / "scaler.mean.npy"
    if how == "object-npy":  # a real .npy whose object array unpickles the payload
        np.save(mean, np.array([Payload(marker), 1.0], dtype=object), allow_pickle=True)
    elif how == "object-npy-and-manifest":  # ... and the model file claims dtype object
        np.save(mean, np.array([Payload(marker), 1.0], dtype=object), allow_pickle=True)
        state = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
        state["stages"]["scaler"]["arrays"]["mean"].update(dtype="object", shape=[2])
        (folder / MODEL_FILE).write_text(json.dumps(state), encoding="utf-8")
    elif how == "pickle-as-npy":  # a bare pickle under the array's name
        mean.write_bytes(pickle.dumps(Payload(marker)))
    elif how == "format-1-joblib":  # an old model folder with its pickled stages
        (folder / "stages.joblib").write_bytes(pickle.dumps(Payload(marker)))
        _edit_model_file(folder, format=1)
    elif how == "joblib-beside-format-2":
        (folder / "stages.joblib").write_bytes(pickle.dumps(Payload(marker)))


@pytest.mark.parametrize(
    ("how", "match"),
    [
        ("object-npy", "scaler.mean.npy' is damaged or truncated: dtype object"),
        ("object-npy-and-manifest", "scaler.mean.npy' is damaged or truncated: dtype object"),
        ("pickle-as-npy", "scaler.mean.npy' is damaged or truncated"),
        ("format-1-joblib", "is a format-1 model .* re-fit it"),
        ("joblib-beside-format-2", "is a format-1 model .* re-fit it"),
    ],
)
def test_assign_runs_nothing_from_a_tampered_folder(
    how: str,
    match: str,
    saved: tuple[Segmenter, Path],
    small_events_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _copy(saved[1], tmp_path)
    marker = tmp_path / "pwned"
    _plant(folder, marker, how)
    out = tmp_path / "assigned.parquet"
    argv = ["--model", str(folder), "--input", str(small_events_path / "events.parquet"),
            "--out", str(out), "--no-cache", "--quiet"]  # fmt: skip
    code = run_cli(build_parser(), main, argv)
    err = capsys.readouterr().err
    assert code == 2
    assert not marker.exists(), "loading the model ran the planted payload"
    assert not out.exists()
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(SegmenterError, match=match):
        Segmenter.load(folder, encoder=WordEncoder(), progress=False)
    assert not marker.exists()


def _truncate(folder: Path) -> None:
    path = folder / "map.umap_anchors.npy"
    path.write_bytes(path.read_bytes()[:-100])


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (
            lambda f: _edit_model_file(f, format=FORMAT + 1),
            f"has format {FORMAT + 1}; .* reads format {FORMAT}",
        ),
        (lambda f: _edit_model_file(f, format="2"), "not a segmenter model file"),
        (
            lambda f: sorted(f.glob("clusterer.*.npy"))[0].unlink(),
            r"clusterer\.\w+\.npy' is missing",
        ),
        (_truncate, "umap_anchors.npy' is damaged or truncated"),
        (
            lambda f: (f / MODEL_FILE).write_text('{"format": 2, "conf', encoding="utf-8"),
            "is not valid JSON",
        ),
        (
            lambda f: (f / MODEL_FILE).write_text("[1, 2]", encoding="utf-8"),
            "not a segmenter model file",
        ),
        (lambda f: _edit_model_file(f, stages={}), "stage 'scaler' is missing or damaged"),
        (lambda f: _edit_model_file(f, k="eight"), "is damaged .*ValueError"),
        (lambda f: (f / MODEL_FILE).unlink(), "is not a segmenter model"),
    ],
)
def test_damaged_folders_give_one_line_errors(
    damage: object, match: str, saved: tuple[Segmenter, Path], tmp_path: Path
) -> None:
    folder = _copy(saved[1], tmp_path)
    damage(folder)  # type: ignore[operator]
    with pytest.raises(SegmenterError, match=match) as info:
        Segmenter.load(folder, encoder=WordEncoder(), progress=False)
    assert "\n" not in str(info.value)


def test_no_pickle_in_the_library(repo_root: Path) -> None:
    """Nothing under segmenter/ or pipelines/ unpickles (joblib, pickle, torch.load)."""
    banned = ("import pickle", "import joblib", "joblib.", "pickle.load", "allow_pickle=True")
    for package in ("segmenter", "pipelines"):
        for path in (repo_root / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert not [b for b in banned if b in text], path
            for line in text.splitlines():
                if "torch.load(" in line:
                    assert "weights_only=True" in line, f"{path}: {line.strip()}"
