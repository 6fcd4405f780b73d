"""The precision a backbone makes descriptors at: float32 (the full network) or bfloat16 (the fast one).

On CPU the bfloat16 network is the folded backbone cast to bfloat16 and compiled by TorchInductor:
its convolutions run on oneDNN's bfloat16 kernels (AMX or AVX-512 where the CPU has them), and the
compiler fuses each MAC readout (normalise over channels, max over cells) into one pass over the
feature map, which in eager mode costs as much as the convolutions on the 16- and 32-channel layers.
Its descriptors stay within :data:`BFLOAT16_TOLERANCE` of the float32 network's.

Compiling needs a C++ compiler. TorchInductor caches the compiled network on disk
(``TORCHINDUCTOR_CACHE_DIR``, default under the system's temporary folder), but every process still
pays a start-up: tracing, and Inductor's probe of the CPU's vector instructions (a test library per
instruction set, each loaded by a fresh Python), measured at 1-2 minutes on two busy cores. The fast
network pays off on batches of at least tens of minutes of audio. On CUDA the cast model runs eagerly.

:func:`default_precision` is what the commands use when told nothing: bfloat16 on a CPU that runs it
natively, for the released model only, whose evaluation it was measured on (``card/fast_network.csv``:
issue 18's gate, mAP within 0.005 of the full network's and no transformation family down by more than 0.02).
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
from collections.abc import Callable

import torch

from ausil_lite.descriptors.backbone import KumarCNN, resolve_device

PRECISIONS = ("float32", "bfloat16")

BFLOAT16_TOLERANCE = 0.05
"""Largest absolute difference allowed between a bfloat16 descriptor component and the float32 one.

Descriptor parts are L2-normalised (components in [0, 1]) and bfloat16 keeps 8 significant bits. On
DAVR-unseen (1,300 videos, 29,848 segments) the largest difference was 0.035, in one component of the
first layers where a near tie moved a maximum to another cell; 99% of videos stayed under 0.007.
"""

BFLOAT16_MIN_COSINE = 0.9999
"""Smallest cosine allowed between a bfloat16 descriptor and the float32 one (0.99994 on DAVR-unseen)."""

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def default_precision(backbone: str, device: str | None) -> str:
    """The precision a command makes ``backbone``'s descriptors at when told nothing.

    bfloat16 (the fast network) for the released backbone on a CPU whose oneDNN has native bfloat16
    kernels (AVX-512 BF16 or AMX) when TorchInductor finds its C++ compiler; float32 otherwise: on CUDA
    (``device`` None means CUDA when available), for other backbones (the fast network's evaluation gate
    was passed by the released model only), and where bfloat16 would be emulated (slower than float32)
    or could not be compiled.
    """
    if backbone != "released":
        return "float32"
    on_cpu = resolve_device(device).type == "cpu"  # as load_backbone places it
    return "bfloat16" if on_cpu and native_bfloat16() and compiler_found() else "float32"


def native_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 convolutions on this CPU's own instructions."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def compiler_found() -> bool:
    """Whether the C++ compiler that TorchInductor would use is on the PATH: ``CXX``, else g++ (clang++ on macOS).

    Read from the environment as TorchInductor's ``cpp.cxx`` default is, instead of importing TorchInductor's
    config: that import takes seconds and about 100 MB, which the process deciding the default (the command's,
    which hands files to extraction workers that build their own networks) would keep to the end.
    """
    return shutil.which(os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")) is not None


def at_precision(folded: KumarCNN, precision: str) -> tuple[KumarCNN, Callable[[torch.Tensor], torch.Tensor]]:
    """``(model, mac)``: the folded backbone at ``precision`` and the function that makes its MAC descriptors.

    ``mac`` takes (N, 1, 174, 128) segments of the model's dtype on its device, channels-last, and
    returns (N, 2528) descriptors of that dtype. float32 returns ``folded`` itself and its eager ``mac``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "float32":
        return folded, folded.mac
    model = copy.deepcopy(folded).to(DTYPES[precision])
    if next(model.parameters()).device.type != "cpu":
        return model, model.mac
    # not frozen: freezing (weights as constants) ran no faster here and bypasses the compile cache
    compiled = torch.compile(model.mac)

    def mac(segments: torch.Tensor) -> torch.Tensor:
        if len(segments) == 1:  # a batch of one would compile a second, specialised graph (a minute)
            return compiled(segments.expand(2, -1, -1, -1).contiguous(memory_format=torch.channels_last))[:1]
        torch._dynamo.maybe_mark_dynamic(segments, 0)  # one graph for every batch size
        return compiled(segments)

    return model, mac
