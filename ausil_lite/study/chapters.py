"""Typed parameters of the study's chapter notebooks that no package config covers (what to show, where).

Each notebook's parameters cell holds plain values; its next cell builds one of these (through
:func:`ausil_lite.config.config_from_dict`, which rejects unknown keys and wrong types) so a bad value
fails at the top of the notebook, not halfway down.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioFeaturesChapter:
    """Chapter 1 (``notebooks/01_audio_features.ipynb``): which excerpt of which recording to follow."""

    profile: str
    recording: str  # an audio file; the default is 8 kHz music on hold from Debian's asterisk-moh-opsound-wav
    start_s: float  # where the excerpt starts in the recording, in seconds
    duration_s: float  # excerpt length in seconds; at least 2 s, one whole segment
    segments_shown: int  # how many segments the descriptor heatmaps show
    output_dir: str  # where the example video and its descriptors are written

    def __post_init__(self) -> None:
        if self.start_s < 0:
            raise ValueError(f"start_s must be >= 0 seconds, got {self.start_s}")
        if self.duration_s < 2.0:
            raise ValueError(f"duration_s must be at least 2 seconds (one segment), got {self.duration_s}")
        if self.segments_shown < 1:
            raise ValueError(f"segments_shown must be at least 1, got {self.segments_shown}")
