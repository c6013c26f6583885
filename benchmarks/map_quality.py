"""The report's 2-D map: umap-learn against the numpy layout, on the same points.

    python -m benchmarks.map_quality RUN_DIR [--seed N]

``RUN_DIR`` is a discovery run folder: the map's input points are its saved map anchors
(``model/map.umap_anchors.npy``, every customer up to the map's sample size) and the segments
come from ``assignments.parquet``. Each engine fits in this process, umap-learn first (its
time includes numba compiling its kernels, as in every fresh run). Printed as JSON: seconds,
trustworthiness of the 10 nearest neighbours (sklearn) and how well the segments can be read
off the map (5-fold accuracy of a 10-nearest-neighbour classifier on the 2-D coordinates).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl


def map_scores(X: np.ndarray, Y: np.ndarray, segments: np.ndarray) -> dict[str, float]:
    """Trustworthiness (10 neighbours) and 10-NN segment accuracy of the map ``Y`` of ``X``."""
    from sklearn.manifold import trustworthiness
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    knn = cross_val_score(KNeighborsClassifier(10), Y, segments, cv=5).mean()
    return {
        "trustworthiness": float(trustworthiness(X, Y, n_neighbors=10)),
        "segment_knn_accuracy": float(knn),
    }


def compare(X: np.ndarray, segments: np.ndarray, seed: int) -> dict[str, Any]:
    """Fit both engines (the pipeline's map settings) on ``X`` and score them."""
    from segmenter.reduce import Reducer

    out: dict[str, Any] = {"points": len(X), "dims": X.shape[1], "seed": seed}
    for engine in ("umap-learn", "numpy"):
        reducer = Reducer(
            pca_dims=0, umap_dims=2, min_dist=0.1, sample_size=len(X), random_state=seed,
            engine=engine,
        )  # fmt: skip
        start = time.perf_counter()
        Y = reducer.fit_transform(X)
        seconds = time.perf_counter() - start
        out[engine] = {"seconds": round(seconds, 2), **map_scores(X, Y, segments)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.map_quality")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    X = np.load(args.run_dir / "model" / "map.umap_anchors.npy")
    assigned = pl.read_parquet(args.run_dir / "assignments.parquet")
    if assigned.height != len(X):
        print(f"{args.run_dir}: the map was fitted on a sample; pass a run of <= 5,000 customers")
        return 2
    print(json.dumps(compare(X, assigned["segment"].to_numpy(), args.seed), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
