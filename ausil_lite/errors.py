"""Typed errors for bad input. Each names the file and the reason, so a batch can record it and go on."""

from __future__ import annotations

from pathlib import Path


class AudioError(Exception):
    """A media file whose audio could not be turned into features."""

    reason = "unusable audio"

    def __init__(self, path: str | Path, detail: str | None = None):
        self.path = str(path)
        self.detail = detail
        text = self.reason if not detail else f"{self.reason}: {detail}"
        super().__init__(f"{self.path}: {text}")


class MissingFileError(AudioError, FileNotFoundError):
    reason = "file not found"


class NotMediaError(AudioError):
    reason = "not a media file that FFmpeg can open"


class NoAudioStreamError(AudioError):
    reason = "no audio stream"


class CorruptStreamError(AudioError):
    reason = "corrupt or truncated audio stream, nothing decodable"


class EmptyAudioError(AudioError):
    reason = "zero-length audio"


class SilentAudioError(AudioError):
    reason = "audio is silent throughout"


class CorruptStreamWarning(UserWarning):
    """Raised as a warning when decoding stopped early but some audio was recovered."""


class BackboneWeightsError(Exception):
    """A backbone weight file that is missing, unreadable, or does not match the architecture."""
