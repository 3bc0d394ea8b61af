"""benchmarks/bench_gpu_models.py runs end to end with tiny configs on the CPU and prints its JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = pytest.mark.reference

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu_models.py"


def test_bench_gpu_models_tiny_cpu(tmp_path):
    out_json = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--iters", "1",
                           "--min-seconds", "0", "--batch-sizes", "2,3", "--e2e-batches", "2",
                           "--json", str(out_json)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert json.loads(out_json.read_text()) == report
    assert report["gpu"]["name"] == "cpu" and report["settings"]["tiny"] is True
    models = report["models"]
    assert set(models) == {"clip_l", "dinov2_l", "sam2_encoder", "sam2_box", "gdino"}
    for name, res in models.items():
        assert "error" not in res, (name, res)
        assert set(res["batches"]) == {"2", "3"}
        for row in res["batches"].values():
            assert row["frames_per_s"] > 0 and row["ms_per_batch"] > 0 and "gpu_busy_pct" in row
        assert res["gflops_per_frame"] is not None and res["gflops_per_frame"] >= 0
        assert res["best_batch"] in (2, 3)
        e2e = res["end_to_end"]
        for mode in ("device_resident_uint8", "numpy_uint8_pinned", "numpy_uint8_pageable",
                     "numpy_float32_host_normalised", "numpy_uint8_decoded_device_resize"):
            assert e2e[mode]["frames_per_s"] > 0 and e2e[mode]["slowdown_vs_device"] > 0
        # float32 host-normalised frames carry 4x the bytes of uint8 frames
        assert e2e["numpy_float32_host_normalised"]["h2d_mb"] >= 3.9 * e2e["numpy_uint8_pinned"]["h2d_mb"]
    assert models["sam2_encoder"]["mask_decoder_1box"]["ms_per_image"] > 0
    proj = report["projection"]
    assert set(proj["gpu_ms_per_clip"]) == {"subjects", "pairs", "aesthetic"}
    assert proj["video_hours_per_gpu_hour"] > 0 and proj["workload_per_clip"]["subject_frames"] == 3
    nvdec = report["nvdec"]
    assert isinstance(nvdec, dict)
    for key in ("pyav_hwaccel", "torchcodec", "torchvision"):   # no GPU here: reported, never a crash
        if key in nvdec:
            assert str(nvdec[key]).startswith("unavailable")
