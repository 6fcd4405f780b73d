"""Similarity calculation: matrix, video comparator, chamfer similarity, and the full AuSiL-lite model."""

from ausil_lite.similarity.chamfer import ChamferScorer, chamfer_similarity
from ausil_lite.similarity.comparator import VideoComparator, pooled_size
from ausil_lite.similarity.matrix import pad_sequences, query_similarity_batch, similarity_matrix
from ausil_lite.similarity.model import AuSiL, load_model, repeat_short

__all__ = [
    "AuSiL",
    "ChamferScorer",
    "VideoComparator",
    "chamfer_similarity",
    "load_model",
    "pad_sequences",
    "pooled_size",
    "query_similarity_batch",
    "repeat_short",
    "similarity_matrix",
]
