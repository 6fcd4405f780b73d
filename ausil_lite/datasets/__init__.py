"""Benchmarks: DAVR-mini and DAVR-unseen (built here from real recordings) and readers for FIVR-200K-alpha and SVD-alpha.

All four give a :class:`~ausil_lite.datasets.benchmark.Benchmark` (``queries()``, ``database()``,
``relevant(query, labels=("DA",))``, ``videos()`` for extraction, ``missing()``, ``summary()``):

- :func:`ausil_lite.datasets.davr_mini.load_davr_mini` (build with ``build_davr_mini`` or
  ``ausil-lite build-benchmark``); its ``table`` has each item's family, parameters and speed factor;
  ``benchmark="davr-unseen"`` loads the benchmark of packages no training code reads;
- :func:`ausil_lite.datasets.fivr.load_fivr200k_alpha`;
- :func:`ausil_lite.datasets.svd.load_svd_alpha`.

Training material (never evaluation material): :class:`ausil_lite.datasets.training.TrainingPool` draws
clips and (anchor, positive) pairs from DAVR-mini's training tracks, or from the released model's corpus
(:mod:`ausil_lite.datasets.corpus`, with scores rendered through several soundfonts as hard negatives by
:mod:`ausil_lite.datasets.renders`), with :func:`ausil_lite.datasets.transforms.random_transform`.
"""
