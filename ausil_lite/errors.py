"""Typed errors for bad input. Each names the file and the reason, so a batch can record it and go on."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input a user can fix (a file, a list, a manifest, a weights file): the CLI prints the
    message, which names the file, instead of a traceback. Subclass it for new kinds of bad input."""


class AudioError(InputError):
    """A media file whose audio could not be turned into features."""

    reason = "unusable audio"

    def __init__(self, path: str | Path, detail: str | None = None):
        self.path = str(path)
        self.detail = detail
        text = self.reason if not detail else f"{self.reason}: {detail}"
        super().__init__(f"{self.path}: {text}")

    def __reduce__(self):
        # rebuild from (path, detail), not from the message, so errors survive worker processes
        return (type(self), (self.path, self.detail))


class MissingFileError(AudioError, FileNotFoundError):
    reason = "file not found"


class FolderGivenError(AudioError):
    reason = "a folder, not a media file"


class NotMediaError(AudioError):
    reason = "FFmpeg cannot open it as media (not a media file, or its header is truncated or corrupt)"


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


class BackboneWeightsError(InputError):
    """A backbone weight file that is missing, unreadable, or does not match the architecture."""
