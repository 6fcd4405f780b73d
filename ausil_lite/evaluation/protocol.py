"""Retrieval evaluation by the FIVR protocol, as in the FIVR-200K and AuSiL evaluation scripts.

For each annotated query: rank every dataset video except the query by similarity (descending; ties
keep the order of the similarity file); AP = (sum over hits of hits-so-far / rank) / number of
relevant dataset videos, so relevant videos missing from the ranking count as misses; mAP is the mean
over queries. The 21-point interpolated precision-recall curve (recall 0, 0.05, ..., 1) is computed
per query over the whole dataset, missing videos scored 0, then averaged.

Videos that could not be obtained are handled by one of two named conventions (``CONVENTIONS``):
``keep`` (the FIVR/AuSiL scripts) leaves them in the ground truth as misses; ``remove`` (the authors'
later ViSiL and distill-and-select code) first drops every video not available from the dataset and
the ground truth. Every :class:`Evaluation` records which one made it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ausil_lite.errors import InputError

CONVENTIONS = {
    "keep": "unobtainable relevant videos stay in the ground truth and count as misses (FIVR-200K, AuSiL scripts)",
    "remove": "unobtainable videos are removed from the dataset and ground truth first (ViSiL, distill-and-select)",
}

RECALL_LEVELS = np.arange(21) * 0.05
"""Recall levels of the interpolated PR curve, computed as i * 0.05 like the reference (0.15 is 0.15000000000000002)."""



class FormatError(InputError, ValueError):
    """A similarity file that is missing or not in the expected format (names the file)."""


class EvaluationError(InputError, ValueError):
    """Inputs that leave nothing to evaluate (e.g. no query is in the dataset id list)."""


MISSING_QUERY = "missing from the similarities"

Similarities = Mapping[str, Mapping[str, float]]
Annotations = Mapping[str, Mapping[str, Sequence[str]]]


def average_precision(ranking: Sequence[str], relevant: set[str]) -> float:
    """AP of a ranked list of ids against ``relevant``: relevant ids absent from the ranking are misses."""
    if not relevant:
        raise ValueError("average precision needs at least one relevant video")
    hits, total = 0, 0.0
    for rank, video in enumerate(ranking, start=1):
        if video in relevant:
            hits += 1
            total += hits / rank
    return total / len(relevant)


def interpolated_precision(scores: np.ndarray, targets: np.ndarray, levels: np.ndarray = RECALL_LEVELS) -> np.ndarray:
    """Interpolated precision (max precision at recall >= level) at each recall level.

    Precision and recall are taken at every distinct score threshold, plus the point (recall 0,
    precision 1), as scikit-learn's ``precision_recall_curve`` (used by the reference) does.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if scores.shape != targets.shape or scores.ndim != 1:
        raise ValueError(f"scores and targets must be 1-D of one length, got {scores.shape} and {targets.shape}")
    if not targets.any():
        raise ValueError("a precision-recall curve needs at least one relevant item")
    order = np.argsort(-scores, kind="stable")
    scores, targets = scores[order], targets[order]
    ends = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(targets)[ends]
    precision = np.r_[tp / (ends + 1), 1.0]
    recall = np.r_[tp / tp[-1], 0.0]
    return np.array([precision[recall >= level].max() for level in levels])


@dataclass(frozen=True)
class Evaluation:
    """mAP, per-query APs and the mean interpolated PR curve of one similarity file."""

    mean_ap: float
    average_precisions: dict[str, float]  # query id -> AP, in annotation order
    relevant_counts: dict[str, int]  # query id -> relevant videos in the (possibly reduced) dataset
    precision_curve: np.ndarray  # (21,) mean interpolated precision at RECALL_LEVELS
    convention: str  # a key of CONVENTIONS
    relevant_labels: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # query id -> why it was not evaluated
    # query id -> its relevant ids that are not dataset ids (a typo, another id list): not counted, so said
    unknown_relevant: dict[str, list[str]] = field(default_factory=dict)

    @property
    def missing_queries(self) -> list[str]:
        """Annotated queries absent from the similarities: the mAP is over fewer queries than annotated."""
        return [query for query, reason in self.skipped.items() if reason == MISSING_QUERY]

    def per_query(self) -> pd.DataFrame:
        """One row per evaluated query: ``query``, ``average_precision``, ``relevant``."""
        return pd.DataFrame(
            {
                "query": list(self.average_precisions),
                "average_precision": list(self.average_precisions.values()),
                "relevant": [self.relevant_counts[q] for q in self.average_precisions],
            }
        )

    def pr_curve(self) -> pd.DataFrame:
        """The interpolated PR curve as ``recall``, ``precision`` rows."""
        return pd.DataFrame({"recall": RECALL_LEVELS, "precision": self.precision_curve})


def check_similarities(similarities: Similarities, source: str = "similarities") -> None:
    """Raise :class:`FormatError` naming every entry that is not a finite number (NaN, Inf, text, null):
    such a score cannot be ranked, and one NaN would silently reorder a whole query's results."""
    bad = [(query, video, sim) for query, results in similarities.items() for video, sim in results.items()
           if isinstance(sim, bool) or not isinstance(sim, (int, float)) or not math.isfinite(sim)]
    if bad:
        shown = "; ".join(f"query {q!r} -> {v!r}: {s!r}" for q, v, s in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise FormatError(f"{source}: {len(bad)} similarity entries are not finite numbers ({shown}{more}); "
                          "rescore them (a NaN usually comes from non-finite descriptors)")


def evaluate(
    similarities: Similarities,
    annotations: Annotations,
    relevant_labels: Sequence[str],
    dataset: Iterable[str],
    convention: str = "keep",
    available: Iterable[str] | None = None,
) -> Evaluation:
    """Evaluate ``{query: {video: similarity}}`` against ``{query: {label: [video ids]}}``.

    ``dataset`` lists every id of the benchmark (queries included). With ``convention="remove"``,
    ``available`` names the videos that were obtained (default: every id in ``similarities``, as
    queries or as results). Queries absent from the similarities or the dataset, or with no relevant
    video left, are skipped as the reference does, and listed in ``Evaluation.skipped``; relevant ids
    that are not dataset ids are left out of the ground truth, as the reference does, and listed in
    ``Evaluation.unknown_relevant``.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; choose one of {sorted(CONVENTIONS)}")
    if available is not None and convention != "remove":
        raise ValueError("'available' applies only to the 'remove' convention")
    labels = tuple(relevant_labels)
    known = set(dataset)
    universe = set(known)
    if convention == "remove":
        if available is None:
            available = set(similarities).union(*(set(r) for r in similarities.values()))
        universe &= set(available)

    check_similarities(similarities)
    aps: dict[str, float] = {}
    counts: dict[str, int] = {}
    curves: list[np.ndarray] = []
    skipped: dict[str, str] = {}
    unknown: dict[str, list[str]] = {}
    for query, gt_sets in annotations.items():
        if query not in similarities:
            skipped[query] = MISSING_QUERY
            continue
        if query not in universe:
            skipped[query] = "not in the dataset" if convention == "keep" else "not in the available dataset"
            continue
        labelled = {v for label in labels for v in gt_sets.get(label, ())}
        if labelled - known:
            unknown[query] = sorted(labelled - known)
        relevant = labelled & universe
        if not relevant:
            skipped[query] = f"no relevant videos with labels {','.join(labels)}"
            continue
        results = similarities[query]
        ranked = [
            (video, sim)
            for video, sim in sorted(results.items(), key=lambda item: item[1], reverse=True)
            if video != query and video in universe
        ]
        ranking = [video for video, _ in ranked]
        aps[query] = average_precision(ranking, relevant)
        counts[query] = len(relevant)

        targets = [video in relevant for video in ranking]
        missing = len(relevant) - sum(targets)
        # as the reference: missing relevant videos, then the rest of the dataset, all scored 0
        targets += [True] * missing + [False] * (len(universe) - len(targets) - missing)
        scores = [sim for _, sim in ranked] + [0.0] * (len(targets) - len(ranked))
        curves.append(interpolated_precision(np.array(scores), np.array(targets)))

    if not aps:
        reasons = Counter(skipped.values())
        summary = "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
        raise EvaluationError(f"no query could be evaluated ({summary}); e.g. {next(iter(skipped), None)!r}")
    return Evaluation(
        mean_ap=float(np.mean(list(aps.values()))),
        average_precisions=aps,
        relevant_counts=counts,
        precision_curve=np.mean(curves, axis=0),
        convention=convention,
        relevant_labels=labels,
        skipped=skipped,
        unknown_relevant=unknown,
    )


def evaluate_benchmark(
    similarities: Similarities,
    benchmark,
    labels: Sequence[str] | None = None,
    convention: str = "keep",
    available: Iterable[str] | None = None,
) -> Evaluation:
    """:func:`evaluate` on a :class:`ausil_lite.datasets.benchmark.Benchmark`: its evaluated queries,
    its database plus the queries as the dataset, its primary label unless ``labels`` says otherwise."""
    annotations = {q: benchmark.annotations[q] for q in benchmark.query_ids}
    dataset = list(dict.fromkeys([*benchmark.query_ids, *benchmark.database_ids]))
    return evaluate(similarities, annotations, labels or [benchmark.primary_label], dataset, convention, available)


def read_similarities(path: str | Path) -> dict[str, dict[str, float]]:
    """The original's similarity file: JSON ``{query_id: {video_id: similarity}}``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: cannot read JSON ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise FormatError(f"{path}: expected a JSON object {{query: {{video: similarity}}}}")
    return data


def write_similarities(path: str | Path, similarities: Similarities) -> Path:
    """Write ``{query_id: {video_id: similarity}}`` as JSON (indent 1, as the original)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {q: {v: float(s) for v, s in r.items()} for q, r in similarities.items()}
    path.write_text(json.dumps(plain, indent=1) + "\n", encoding="utf-8")
    return path
