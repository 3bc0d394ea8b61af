"""Ingest and probe: what a file is, or a readable reason why it cannot be used."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction

import av

from .decode import av_open, display_size, effective_sar, sample_aspect


class ProbeError(Exception):
    """An input that cannot be curated; the message is written to videos.error as is."""


@dataclass
class ProbeInfo:
    codec: str
    width: int           # display size: sample aspect ratio and rotation applied (square pixels)
    height: int
    coded_width: int
    coded_height: int
    rotation: int        # degrees, as FFmpeg's display matrix reports it
    fps: float           # average frame rate
    duration_s: float    # from the container; the decode pass refines it
    n_frames_header: int
    has_audio: bool
    size_bytes: int
    sample_aspect: Fraction = field(default_factory=lambda: Fraction(1))   # SAR of the coded pixels (1: square)


def probe(path: str | bytes, max_pixels: int = 4096 * 2160) -> ProbeInfo:
    """Open the file, read stream facts and decode one frame; raise ProbeError with a clear message."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise ProbeError(f"cannot read file: {e.strerror or e}") from None
    if size == 0:
        raise ProbeError("empty file (0 bytes)")
    try:
        container = av_open(path)
    except av.FFmpegError as e:
        raise ProbeError(f"not a readable media file (FFmpeg: {_ffmpeg_reason(e)}); it may be truncated, corrupt or not a video") from None
    except (UnicodeError, OSError) as e:
        raise ProbeError(f"cannot open: {e}") from None
    with container:
        if not container.streams.video:
            kinds = ", ".join(f"{len(getattr(container.streams, k))} {k}" for k in ("audio", "subtitles", "data")
                              if len(getattr(container.streams, k)))
            raise ProbeError(f"no video stream ({kinds or 'no streams'}); audio-only or not a video")
        if all(_is_attached_picture(s) for s in container.streams.video):
            raise ProbeError("holds no moving video: its only picture is attached cover art "
                             f"({', '.join(f'{len(getattr(container.streams, k))} {k}' for k in ('audio',) if len(getattr(container.streams, k)))} stream)")
        stream = container.streams.video[0]
        cc = stream.codec_context
        w, h = int(cc.width or 0), int(cc.height or 0)
        if w <= 0 or h <= 0:
            raise ProbeError("video stream has no frame size; the file is corrupt")
        if w * h > max_pixels:
            raise ProbeError(f"resolution {w}x{h} exceeds the recipe limit of {max_pixels} pixels "
                             f"(set ingest.max_pixels to accept it)")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if container.duration:
            duration = container.duration / av.time_base
        elif stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = 0.0
        rotation = 0
        try:
            first = next(container.decode(stream))
            rotation = int(round(getattr(first, "rotation", 0) or 0)) % 360
        except StopIteration:
            raise ProbeError("video stream holds no decodable frame; the file is truncated or corrupt") from None
        except av.FFmpegError as e:
            raise ProbeError(f"cannot decode the first video frame (FFmpeg: {_ffmpeg_reason(e)})") from None
        if fps <= 0:
            raise ProbeError("video stream has no frame rate; cannot time its frames")
        try:
            next(container.decode(stream))
        except StopIteration:
            raise ProbeError(f"holds no moving video: one frame only (a still image, "
                             f"{(container.format.name or '?').split(',')[0]}), whatever its file name says") from None
        except av.FFmpegError:
            pass    # a later decode error is the truncation check's to report
        sar = effective_sar(w, h, sample_aspect(stream))
        dw, dh = display_size(w, h, sar, rotation)
        return ProbeInfo(codec=cc.name, width=dw, height=dh, coded_width=w, coded_height=h, rotation=rotation,
                         fps=fps, duration_s=float(duration), n_frames_header=int(stream.frames or 0),
                         has_audio=bool(container.streams.audio), size_bytes=size, sample_aspect=sar)


def _is_attached_picture(stream) -> bool:
    """Cover art in an audio file (or any container) is a 'video' stream of one still picture."""
    disp = getattr(stream, "disposition", None)
    flag = getattr(getattr(av.stream, "Disposition", None), "attached_pic", None)
    try:
        return bool(disp is not None and flag is not None and disp & flag)
    except TypeError:
        return False


def _ffmpeg_reason(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return msg.split(": '")[0].strip()
