"""Write audio (with an optional simple picture stream) into real media containers with PyAV.

Used to make test inputs, the first chapter's example and every DAVR-mini item, so the study reads
videos as users have them: H.264/AAC in mp4, VP9/Opus in webm, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class ContainerFormat:
    """Codecs written for one file suffix. ``video_codec`` is None for audio-only formats."""

    audio_codec: str
    video_codec: str | None
    audio_rate: int | None = None  # None keeps the input rate; Opus only runs at 48 kHz


FORMATS: dict[str, ContainerFormat] = {
    ".mp4": ContainerFormat("aac", "libx264"),
    ".mov": ContainerFormat("aac", "libx264"),
    ".mkv": ContainerFormat("aac", "libx264"),
    ".webm": ContainerFormat("libopus", "libvpx-vp9", 48_000),
    ".avi": ContainerFormat("libmp3lame", "mpeg4"),
    ".wav": ContainerFormat("pcm_s16le", None),
    ".mp3": ContainerFormat("libmp3lame", None),
    ".flac": ContainerFormat("flac", None),
    ".ogg": ContainerFormat("libopus", None, 48_000),
    ".m4a": ContainerFormat("aac", None),
    ".opus": ContainerFormat("libopus", None, 48_000),
}

VIDEO_SIZE = 64
"""Width and height of the picture stream, in pixels: small, the study is about the audio."""

VIDEO_FPS = 4


def write_media(
    path: str | Path,
    samples: np.ndarray,
    sample_rate: int,
    *,
    audio_codec: str | None = None,
    bitrate: int | None = None,
    picture: bool = True,
    seed: int = 0,
) -> Path:
    """Write mono ``samples`` (float, -1..1) at ``sample_rate`` Hz to ``path``.

    The container follows the suffix (see :data:`FORMATS`); ``audio_codec`` and ``bitrate`` (bit/s)
    override the defaults, e.g. to re-encode through MP3 at 32 kbit/s. Video containers also get a
    plain moving picture, coloured by ``seed``, lasting as long as the audio.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unsupported suffix {suffix!r}; use one of {sorted(FORMATS)}")
    fmt = FORMATS[suffix]
    rate = fmt.audio_rate or sample_rate
    if rate != sample_rate:
        from ausil_lite.descriptors.audio import resample

        samples = resample(np.asarray(samples, dtype=np.float32), sample_rate, rate)
    pcm = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0).reshape(1, -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        codec = audio_codec or fmt.audio_codec
        # FFmpeg's default AAC coder (twoloop) takes ~60% of a benchmark build's CPU; "fast" is the
        # coder most encoders in the wild use, at a quality this study cannot tell apart
        options = {"aac_coder": "fast"} if codec == "aac" else {}
        audio = container.add_stream(codec, rate=rate, layout="mono", options=options)
        if bitrate:
            audio.bit_rate = int(bitrate)
        video = None
        if picture and fmt.video_codec:
            video = container.add_stream(fmt.video_codec, rate=VIDEO_FPS)
            video.width = video.height = VIDEO_SIZE
            video.pix_fmt = "yuv420p"
        block = 4096
        for start in range(0, pcm.shape[1], block):
            frame = av.AudioFrame.from_ndarray(pcm[:, start : start + block], format="flt", layout="mono")
            frame.sample_rate = rate
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
        if video is not None:
            n_frames = max(1, int(np.ceil(pcm.shape[1] / rate * VIDEO_FPS)))
            base = np.random.default_rng(seed).integers(40, 215, size=3)
            for i in range(n_frames):
                image = np.empty((VIDEO_SIZE, VIDEO_SIZE, 3), dtype=np.uint8)
                image[:] = base
                image[:, (i * 4) % VIDEO_SIZE] = 255  # a moving bar, so the stream is not static
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                container.mux(video.encode(frame))
            container.mux(video.encode(None))
    return path
