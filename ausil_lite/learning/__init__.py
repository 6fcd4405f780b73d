"""Learning: :mod:`~ausil_lite.learning.selfsup` trains the backbone self-supervised on unlabelled recordings,
:mod:`~ausil_lite.learning.triplets` trains whitening, attention and comparator on triplets with hard-negative mining.
"""
