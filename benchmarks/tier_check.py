"""Does running FAISS on one thread for small inputs change the tier choice? Checked directly.

    OMP_WAIT_POLICY=PASSIVE python -m benchmarks.tier_check [--cases grocery,retail,sparse]

Fits the default pipeline (k = 8, seed 0) on synthetic shops of the balance benchmark twice in
one process: FAISS with all its threads for every input (as before wave 2, step 3), and with
one thread below :data:`segmenter.cluster.kmeans.ONE_THREAD_POINTS` points (now). Prints, per
case, the chosen tier counts, the ARI between the two partitions and the seconds of the
cluster stage (from ``Segmenter.timings_``), as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from sklearn.metrics import adjusted_rand_score

from benchmarks.balance_cases import shop_case
from benchmarks.context import load_encoder
from segmenter.cluster import kmeans
from segmenter.config import SegmenterConfig
from segmenter.embed import EmbeddingCache
from segmenter.model import Segmenter


def check(case_name: str, cache: EmbeddingCache | None) -> dict[str, Any]:
    """Both thread settings on one shop case."""
    case = shop_case(case_name, _customers(case_name), k=8, seed=0)
    encoder = load_encoder()
    out: dict[str, Any] = {"case": case_name, "customers": len(case.customers)}
    labels = {}
    default = kmeans.ONE_THREAD_POINTS
    for name, limit in (("all_threads", 0), ("one_thread_small", default)):
        kmeans.ONE_THREAD_POINTS = limit
        try:
            config = SegmenterConfig(k=8, seed=0)
            model = Segmenter(config, encoder=encoder, cache=cache, progress=False)
            model.fit(case.data)
        finally:
            kmeans.ONE_THREAD_POINTS = default
        labels[name] = model.assignments_["segment"].to_numpy()
        out[name] = {
            "n_tiers": model.balance_["n_tiers"] if model.balance_ else None,
            "cluster_seconds": model.timings_["cluster"],
        }
    same = adjusted_rand_score(labels["all_threads"], labels["one_thread_small"])
    out["ari_between"] = float(same)
    return out


def _customers(name: str) -> int:
    from benchmarks.shop_shapes import SHAPES

    return SHAPES[name].customers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tier_check")
    parser.add_argument("--cases", default="grocery,retail,sparse")
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/segmenter/embeddings"))
    args = parser.parse_args(argv)
    cache = EmbeddingCache(args.cache)
    for name in args.cases.split(","):
        print(json.dumps(check(name, cache)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
