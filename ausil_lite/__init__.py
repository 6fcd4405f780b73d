"""ausil-lite: duplicate audio video retrieval, after AuSiL (Avgoustinakis et al., ICPR 2020).

Data flows one way: audio (decode, resample) -> features (mel, segments, backbone, MAC, whitening,
attention) -> similarity (matrix, comparator, chamfer) -> training -> evaluation. The CLI and the
notebooks are thin layers over these modules.
"""

__version__ = "0.1.0"
