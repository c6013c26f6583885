"""Engines that run the pipeline: ``local`` (one process, :class:`segmenter.model.Segmenter`)
and ``ray`` (:mod:`segmenter.engines.ray_engine`: the same library functions mapped over a
Ray cluster's blocks of customers). Importing this package imports no engine."""

ENGINES = ("local", "ray")
