"""The CNN of Kumar, Khadkevich and Fuegen (ICASSP 2018, ``weak_mxh64_1024``) and its MAC descriptors.

Layer names match the published AudioSet state dict (``layer1.0.weight`` ...), so the original file
loads as is. Without it the network starts from a seeded random initialisation, whose intermediate
MAC descriptors still carry a usable audio signature (see the study's backbone comparison).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ausil_lite.errors import BackboneWeightsError

MAC_LAYERS = (1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 18)
"""Layers whose outputs give MAC descriptors: every conv block, as in the original."""

MAC_DIMS = (16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 512, 1024)
MAC_DIM = sum(MAC_DIMS)  # 2528
N_CLASSES = 527  # AudioSet


def _conv_block(c_in: int, c_out: int, kernel: int = 3, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=padding), nn.BatchNorm2d(c_out), nn.ReLU())


class KumarCNN(nn.Module):
    """``weak_mxh64_1024``: 13 conv blocks and 6 max-pools over (N, 1, 174, 128) log-mel segments."""

    def __init__(self) -> None:
        super().__init__()
        channels = [(1, 16), (16, 16), None, (16, 32), (32, 32), None, (32, 64), (64, 64), None,
                    (64, 128), (128, 128), None, (128, 256), (256, 256), None, (256, 512), None]
        for i, spec in enumerate(channels, start=1):
            setattr(self, f"layer{i}", _conv_block(*spec) if spec else nn.MaxPool2d(2))
        self.layer18 = _conv_block(512, 1024, kernel=2, padding=0)
        self.layer19 = nn.Sequential(nn.Conv2d(1024, N_CLASSES, 1), nn.Sigmoid())

    def layers(self) -> list[nn.Module]:
        return [getattr(self, f"layer{i}") for i in range(1, 20)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """AudioSet class probabilities (N, 527): the original head, averaged over the output map."""
        for layer in self.layers():
            x = layer(x)
        return x.mean(dim=(2, 3))

    def mac(self, x: torch.Tensor) -> torch.Tensor:
        """MAC descriptors (N, 2528) of a batch of segments; stops after layer 18 (the head is unused).

        Outside training, a layer's output is read out once the next layer has consumed it, so the readout
        can scale it in place: on the two 16-channel maps (41 MB each for 29 segments) a fresh scaled copy
        cost as much as their convolutions, and the network runs about a sixth faster without it, with
        bit-identical descriptors. Training keeps :meth:`_mac_recording_gradients`.
        """
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()):
            return self._mac_recording_gradients(x)
        parts = []
        for i, layer in enumerate(self.layers()[:18], start=1):
            out = layer(x)
            if i - 1 in MAC_LAYERS:
                parts.append(_scaled_max_in_place(x))
            x = out
        parts.append(_scaled_max_in_place(x))  # layer 18
        return torch.cat(parts, dim=1)

    def _mac_recording_gradients(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`mac` as training has always computed it, each layer read out as soon as it is made and out
        of place: the same descriptors, and the gradients' rounding that a seeded run (a released model's
        training included) reproduces bit for bit; reading out later or with ``max`` instead of ``amax``
        rounds them otherwise."""
        parts = []
        for i, layer in enumerate(self.layers()[:18], start=1):
            x = layer(x)
            if i in MAC_LAYERS:
                # L2-normalise over channels at each time-frequency cell, max over cells, L2 again
                inverse_norm = torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(1e-12).reciprocal()
                parts.append(F.normalize(torch.amax(x * inverse_norm, dim=(2, 3)), p=2, dim=1))
        return torch.cat(parts, dim=1)


def _scaled_max_in_place(x: torch.Tensor) -> torch.Tensor:
    """One layer's MAC (N, C), overwriting ``x``: L2-normalise over channels at each time-frequency cell (by the
    reciprocal norm: a full-size division costs more), max over cells, L2 again. Works on the (N, cells, C) view
    that channels-last memory gives, where ``max`` runs three times as fast as ``amax`` on the 16-channel maps."""
    n, c = x.shape[:2]
    cells = x.permute(0, 2, 3, 1).reshape(n, -1, c)  # a view for channels-last maps, a copy otherwise
    inverse_norm = torch.linalg.vector_norm(cells, dim=2, keepdim=True).clamp_min(1e-12).reciprocal()
    return F.normalize(cells.mul_(inverse_norm).max(dim=1).values, p=2, dim=1)


def fold_batchnorm(model: KumarCNN) -> KumarCNN:
    """An inference copy with each BatchNorm folded into its convolution and in-place ReLUs.

    Same outputs (to float rounding) as ``model`` in eval mode, about 1.5x faster on CPU, where the
    normalisation passes over the large early feature maps cost as much as the convolutions.
    """
    folded = copy.deepcopy(model).eval()
    for layer in folded.layers():
        if isinstance(layer, nn.Sequential) and isinstance(layer[1], nn.BatchNorm2d):
            conv, bn = layer[0], layer[1]
            with torch.no_grad():
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
                conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
            layer[1] = nn.Identity()
            layer[2] = nn.ReLU(inplace=True)
    return folded


def _strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that ``nn.DataParallel`` adds to every key of a saved model."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def load_weights(model: KumarCNN, weights: str | Path) -> KumarCNN:
    """Load a state dict file (the original ``mx-h64-1024_0d3-1.17.pkl`` or a selfsup checkpoint).

    Raises :class:`BackboneWeightsError` naming the file and every missing, unexpected or misshapen key.
    """
    path = Path(weights)
    if not path.is_file():
        raise BackboneWeightsError(f"{path}: backbone weight file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a state dict
        raise BackboneWeightsError(f"{path}: not a PyTorch state dict ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneWeightsError(f"{path}: expected a dict of tensors (a state dict)")
    state = _strip_module_prefix(state)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or misshapen:
        problems = []
        if missing:
            problems.append(f"missing keys {missing}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if misshapen:
            problems.append(
                "shape mismatch " + ", ".join(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in misshapen)
            )
        raise BackboneWeightsError(f"{path}: does not match weak_mxh64_1024: " + "; ".join(problems))
    model.load_state_dict(state)
    return model


def load_backbone(weights: str | Path | None = None, seed: int = 0, device: str | torch.device | None = None) -> KumarCNN:
    """The backbone in eval mode on ``device`` (CUDA when available, else CPU).

    With ``weights`` None the network is initialised from ``seed`` (PyTorch's default initialisers
    under a local generator), so the same seed always gives the same descriptors.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = KumarCNN()
    if weights is not None:
        load_weights(model, weights)
    device = resolve_device(device)
    # channels-last runs the 16- and 32-channel convolutions about twice as fast on CPU (oneDNN)
    return model.to(device, memory_format=torch.channels_last).eval()


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch device; None means CUDA when there is one, else the CPU (every command's default)."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.inference_mode()
def mac_descriptors(
    model: KumarCNN, segments: torch.Tensor, batch_size: int = 64, mac: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """MAC descriptors (N, 2528) of (N, 1, 174, 128) segments, in batches of ``batch_size``.

    Segments go to the model's device and dtype; ``mac`` makes each batch's descriptors (default
    ``model.mac``; :func:`ausil_lite.descriptors.precision.at_precision` gives a compiled one).
    """
    parameter = next(model.parameters())
    mac = model.mac if mac is None else mac
    out = [
        mac(segments[i : i + batch_size].to(parameter.device, parameter.dtype, memory_format=torch.channels_last))
        for i in range(0, len(segments), batch_size)
    ]
    if not out:
        return torch.empty((0, MAC_DIM), device=parameter.device, dtype=parameter.dtype)
    return torch.cat(out)
