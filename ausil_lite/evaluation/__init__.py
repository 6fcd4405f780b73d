"""Evaluation: :mod:`~ausil_lite.evaluation.protocol` scores similarities by the FIVR protocol (mAP, per-query AP),
:mod:`~ausil_lite.evaluation.breakdown` splits a score by transformation family and speed factor.
"""
