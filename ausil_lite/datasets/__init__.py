"""Benchmarks: DAVR-mini (built here from real recordings) and readers for FIVR-200K-alpha and SVD-alpha."""
