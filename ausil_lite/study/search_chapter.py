"""Typed parameters of the search chapter (``notebooks/07_search.ipynb``): inputs, outputs, what to show."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SearchChapter:
    profile: str
    davr_root: str  # a built DAVR-mini (queries.txt, database.txt, annotation.json)
    features_dir: str  # its feature store; extracted into when videos are missing
    index_dir: str  # where the chapter writes its search index
    model_dir: str | None  # a trained AuSiL-lite model: its whitening and reranking (None: fitted whitening, chamfer)
    benchmark_json: str  # output of benchmarks/search_scale.py, plotted when present
    queries_shown: int  # queries whose matches and spans are shown
    top: int  # matches listed per query
    candidates: int  # videos stage 1 passes to stage 2

    def __post_init__(self) -> None:
        for name in ("queries_shown", "top", "candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
