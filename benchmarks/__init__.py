"""The benchmark of the repository: segment quality, recovery, speed, latency, classification
and the deep head, run by ``python -m pipelines.benchmark`` from a checkout (results in
``reports/benchmarks/``, tables in BENCHMARKS.md).

Not part of the installed package. It uses the library's public API only (a test parses the
imports), and reads what the library records of itself (``Segmenter.timings_``,
``Segmenter.last_timings_``) rather than mirroring its code.
"""
