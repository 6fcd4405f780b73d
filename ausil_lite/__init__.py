"""ausil-lite: duplicate audio video retrieval, after AuSiL (Avgoustinakis et al., ICPR 2020).

The package reads in the order data flows, one way: :mod:`ausil_lite.descriptors` (decode, log-mel,
backbone, MAC, whitening, attention, the feature store) -> :mod:`ausil_lite.similarity` (matrix,
comparator, chamfer, the AuSiL-lite model) -> :mod:`ausil_lite.learning` (triplet and self-supervised
training) -> :mod:`ausil_lite.evaluation` (the FIVR protocol). Beside them: :mod:`ausil_lite.datasets`,
:mod:`ausil_lite.baselines`, :mod:`ausil_lite.search` and :mod:`ausil_lite.models` (the released model).
The command line (:mod:`ausil_lite.cli`, :mod:`ausil_lite.commands`) is a thin layer over these;
:mod:`ausil_lite.study` is how the book is made, and no library module imports it.
"""

__version__ = "0.1.0"
