"""The one GPU path for reference image models: frames in, float32 numpy out, batched by frame count.

Why one runner: every reference image model (CLIP, DINOv2, SigLIP, SAM 2's image encoder,
GroundingDINO) spends its time the same way -- host preprocessing, a host->device copy, a
forward pass, a device->host copy of small outputs. Doing that well once (pinned memory, copies
overlapped with compute on a side CUDA stream, bf16, inference mode, uint8 on the wire with
normalisation on the device) and measuring it (``stats``) beats five slightly different loops.

torch is imported lazily (the core curation path must not import it; see helper-rules.md).

Input conventions:
- float32 ``(N, 3, H, W)``: already preprocessed, passed through as is (cast to the run dtype).
- uint8 ``(N, 3, H, W)`` or ``(N, H, W, 3)``: sent to the device as uint8 (4x fewer bytes than
  float32), then ``x / 255``, the optional ``resize`` (bilinear, antialiased) and, when
  ``mean``/``std`` are given, ``(x - mean) / std`` per channel, all on the device.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np

_DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" when a CUDA device is visible, else "cpu"; anything else is returned as is."""
    import torch
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def resolve_run_dtype(dtype: Any = "auto", device: str = "cpu"):
    """"auto" -> bfloat16 on a CUDA device that supports it, float32 otherwise (CPU bf16 is slower
    than fp32 on most hosts); strings/aliases ("bf16", "float16", ...) -> torch dtypes."""
    import torch
    from .hf import resolve_torch_dtype
    if dtype in (None, "auto"):
        if str(device).startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, str):
        dtype = _DTYPE_ALIASES.get(dtype, dtype)
    return resolve_torch_dtype(dtype, device)


def _empty_stats() -> dict:
    return {"frames": 0, "batches": 0, "calls": 0, "wall_s": 0.0, "host_prep_s": 0.0, "h2d_s": 0.0,
            "compute_s": 0.0, "d2h_s": 0.0, "h2d_bytes": 0, "timer": "none"}


class TorchBatchRunner:
    """Run ``forward`` over frames in batches of ``batch_frames`` on ``device`` in ``dtype``.

    ``forward`` maps a ``(B, 3, H, W)`` tensor on the device to a tensor whose first dimension is
    ``B`` (embeddings, logits, masks...). If it is an ``nn.Module`` the runner moves it to the
    device, casts its weights to the run dtype and puts it in eval mode; a plain callable (a closure
    over a model, e.g. ``lambda x: model(pixel_values=x).image_embeds``) is used as is. Either way
    it runs under ``torch.inference_mode`` and, for a non-float32 dtype, ``torch.autocast``.
    ``resize=(H, W)`` resizes every batch on the device (decoded frames of any size in, model input out).

    ``stats`` accumulates over calls (``reset_stats()`` clears it): frames, batches, calls, wall_s,
    host_prep_s (numpy -> pinned staging), h2d_s / compute_s / d2h_s (CUDA events on GPU, summed
    per batch; wall-clock phases on CPU), h2d_bytes, and timer ("cuda_events" | "perf_counter").
    On GPU the copy phases overlap compute, so h2d_s + compute_s + d2h_s can exceed wall_s.
    """

    def __init__(self, forward: Callable[[Any], Any], *, device: str = "auto", dtype: Any = "auto",
                 batch_frames: int = 32, pin_memory: bool = True, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, channels_last: bool = False,
                 resize: tuple[int, int] | None = None, compile: bool | str = False) -> None:
        import torch
        if batch_frames < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.device = resolve_device(device)
        self.dtype = resolve_run_dtype(dtype, self.device)
        self.batch_frames = int(batch_frames)
        self.is_cuda = self.device.startswith("cuda")
        self.pin_memory = bool(pin_memory) and self.is_cuda
        self.channels_last = bool(channels_last)
        self.resize = None if resize is None else (int(resize[0]), int(resize[1]))
        if isinstance(forward, torch.nn.Module):
            forward = forward.to(device=self.device, dtype=self.dtype).eval()
        self.compiled = bool(compile)
        if self.compiled:   # fuses norms/GELU/residual adds; static shapes: partial batches are padded (_compute)
            mode = compile if isinstance(compile, str) else "max-autotune-no-cudagraphs"
            forward = torch.compile(forward, mode=mode, dynamic=False)
        self.forward = forward
        self._mean = None if mean is None else torch.tensor(mean, dtype=torch.float32,
                                                            device=self.device).view(1, -1, 1, 1)
        self._std = None if std is None else torch.tensor(std, dtype=torch.float32,
                                                          device=self.device).view(1, -1, 1, 1)
        self._copy_stream = torch.cuda.Stream(device=self.device) if self.is_cuda else None
        self._staging: dict = {}          # (shape, dtype) -> two pinned host buffers, reused across calls
        self.stats: dict = _empty_stats()

    # ------------------------------------------------------------------ public

    def reset_stats(self) -> None:
        self.stats = _empty_stats()

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """Frames ``(N, 3, H, W)`` float32/uint8 (or uint8 ``(N, H, W, 3)``) -> float32 numpy outputs
        concatenated along the first axis (same order as the input)."""
        pixels = self._check_input(pixels)
        t0 = time.perf_counter()
        if self.is_cuda:
            out = self._run_cuda(pixels)
        else:
            out = self._run_cpu(pixels)
        self.stats["wall_s"] += time.perf_counter() - t0
        self.stats["calls"] += 1
        return out

    def run_device(self, x):
        """Device-resident frames (a torch tensor already on ``device``) -> device tensor outputs, no
        transfers: for chaining model stages and for measuring the transfer overhead."""
        import torch
        if x.shape[0] == 0:
            raise ValueError("run_device needs at least one frame")
        outs = []
        with torch.inference_mode():
            for s in range(0, x.shape[0], self.batch_frames):
                outs.append(self._compute(self._prepare(x[s:s + self.batch_frames])))
        return torch.cat(outs, 0)

    # ------------------------------------------------------------------ internals

    def _check_input(self, pixels) -> np.ndarray:
        pixels = np.asarray(pixels)
        if pixels.ndim != 4:
            raise ValueError(f"expected frames (N, 3, H, W), got shape {pixels.shape}")
        if pixels.dtype not in (np.uint8, np.float32):
            if np.issubdtype(pixels.dtype, np.floating):
                pixels = pixels.astype(np.float32)
            else:
                raise TypeError(f"frames must be uint8 or float32, got {pixels.dtype}")
        if pixels.shape[0] == 0:
            raise ValueError("no frames")
        if pixels.shape[1] != 3 and not (pixels.dtype == np.uint8 and pixels.shape[-1] == 3):
            raise ValueError(f"expected 3 channels in axis 1 (or uint8 HWC), got shape {pixels.shape}")
        return pixels

    def _prepare(self, x):
        """On-device conversion: HWC -> CHW, uint8 -> [0, 1], resize, (x - mean) / std, run dtype."""
        import torch
        if x.dim() == 4 and x.shape[1] != 3 and x.shape[-1] == 3:
            x = x.permute(0, 3, 1, 2)
        is_uint8 = x.dtype == torch.uint8
        if is_uint8:
            x = x.float().div_(255.0)
        if self.resize is not None and tuple(x.shape[-2:]) != self.resize:
            # on the device: a host resize of 720p to 224 costs ~4 ms a frame (cv2 INTER_AREA), more
            # than a ViT-L/14 forward on an H100 (benchmarks/bench_gpu_models.py)
            x = torch.nn.functional.interpolate(x.float(), size=self.resize, mode="bilinear", antialias=True,
                                                align_corners=False)
        if is_uint8 and self._mean is not None:
            x = (x - self._mean) / self._std
        x = x.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.contiguous() if not self.channels_last else x

    def _compute(self, x):
        import torch
        use_autocast = self.dtype != torch.float32
        device_type = "cuda" if self.is_cuda else "cpu"
        n = x.shape[0]
        if self.compiled and n < self.batch_frames:   # one static shape: no recompilation for the last batch
            x = torch.cat([x, x.new_zeros((self.batch_frames - n, *x.shape[1:]))], 0)
        with torch.autocast(device_type=device_type, dtype=self.dtype, enabled=use_autocast):
            y = self.forward(x)
        if self.compiled and n < self.batch_frames and isinstance(y, torch.Tensor):
            y = y[:n]
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"forward must return a tensor, got {type(y).__name__} (wrap the model in a "
                            "function that picks the output, e.g. lambda x: m(pixel_values=x).image_embeds)")
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"forward returned {y.shape[0]} rows for a batch of {x.shape[0]} frames")
        return y

    def _run_cpu(self, pixels: np.ndarray) -> np.ndarray:
        import torch
        st = self.stats
        st["timer"] = "perf_counter"
        outs = []
        with torch.inference_mode():
            for s in range(0, pixels.shape[0], self.batch_frames):
                chunk = pixels[s:s + self.batch_frames]
                t = time.perf_counter()
                x = self._prepare(torch.from_numpy(np.ascontiguousarray(chunk)))
                t1 = time.perf_counter()
                y = self._compute(x)
                t2 = time.perf_counter()
                outs.append(y.float().numpy().copy())
                t3 = time.perf_counter()
                st["host_prep_s"] += t1 - t
                st["h2d_bytes"] += chunk.nbytes         # what a device copy would carry
                st["compute_s"] += t2 - t1
                st["d2h_s"] += t3 - t2
                st["frames"] += chunk.shape[0]
                st["batches"] += 1
        return np.concatenate(outs, 0)

    def _staging_buffers(self, shape, dtype):
        """Two pinned host buffers of one batch, reused (cudaHostAlloc is slow: never per batch)."""
        import torch
        key = (tuple(shape), str(dtype))
        if key not in self._staging:
            tdtype = torch.uint8 if dtype == np.uint8 else torch.float32
            self._staging = {key: [torch.empty(shape, dtype=tdtype).pin_memory() for _ in range(2)]}
        return self._staging[key]

    def _run_cuda(self, pixels: np.ndarray) -> np.ndarray:
        """Double-buffered: batch i+1 is staged into pinned memory (host) and copied on a side
        stream while batch i computes; outputs come back with non-blocking copies into pinned
        host memory, synchronised once at the end."""
        import torch
        st = self.stats
        st["timer"] = "cuda_events"
        n, bf = pixels.shape[0], self.batch_frames
        starts = list(range(0, n, bf))
        compute_stream = torch.cuda.current_stream(self.device)
        bufs = self._staging_buffers((min(bf, n),) + pixels.shape[1:], pixels.dtype) if self.pin_memory else None
        copy_done = [None, None]          # event per staging buffer: its last H2D copy finished
        timing = []                       # (h2d start, h2d end, compute start, compute end, d2h end) per batch

        def stage(i):
            s = starts[i]
            chunk = pixels[s:s + bf]
            t = time.perf_counter()
            if bufs is not None:
                slot = i % 2
                if copy_done[slot] is not None:
                    copy_done[slot].synchronize()      # the copy that read this buffer two batches ago
                host = bufs[slot][:chunk.shape[0]]
                host.copy_(torch.from_numpy(np.ascontiguousarray(chunk)))
            else:
                slot, host = None, torch.from_numpy(np.ascontiguousarray(chunk))
            st["host_prep_s"] += time.perf_counter() - t
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            with torch.cuda.stream(self._copy_stream):
                e0.record(self._copy_stream)
                dev = host.to(self.device, non_blocking=bufs is not None)
                e1.record(self._copy_stream)
            if slot is not None:
                copy_done[slot] = e1
            st["h2d_bytes"] += host.numel() * host.element_size()
            return dev, e0, e1

        out_host, out_rows = None, 0
        pending = stage(0)
        with torch.inference_mode():
            for i in range(len(starts)):
                dev, h0, h1 = pending
                compute_stream.wait_event(h1)
                dev.record_stream(compute_stream)     # allocated on the copy stream, used here
                c0, c1, d1 = (torch.cuda.Event(enable_timing=True) for _ in range(3))
                c0.record(compute_stream)
                y = self._compute(self._prepare(dev))
                c1.record(compute_stream)
                if i + 1 < len(starts):
                    pending = stage(i + 1)           # host staging + H2D overlap this batch's compute
                y = y.float()
                if out_host is None:
                    out_host = torch.empty((n,) + tuple(y.shape[1:]), dtype=torch.float32,
                                           pin_memory=self.pin_memory)
                out_host[out_rows:out_rows + y.shape[0]].copy_(y, non_blocking=self.pin_memory)
                d1.record(compute_stream)
                out_rows += y.shape[0]
                timing.append((h0, h1, c0, c1, d1))
                st["frames"] += dev.shape[0]
                st["batches"] += 1
        torch.cuda.synchronize(self.device)
        for h0, h1, c0, c1, d1 in timing:
            st["h2d_s"] += h0.elapsed_time(h1) / 1e3
            st["compute_s"] += c0.elapsed_time(c1) / 1e3
            st["d2h_s"] += c1.elapsed_time(d1) / 1e3
        return out_host.numpy()


# ---------------------------------------------------------------------- batch sizing

# A batch should carry enough work that per-forward fixed costs (kernel launches, Python, a few
# ms for a 24-layer ViT) stay under ~10%: ~4 TFLOP ~ 10 ms at 40% of an H100's bf16 peak. Ours,
# from benchmarks/bench_gpu_models.py.
TARGET_BATCH_FLOPS = 4e12


def frames_per_batch_for(model_flops_per_frame: float, memory_gb: float, *,
                         activation_gb_per_frame: float | None = None, target_batch_flops: float = TARGET_BATCH_FLOPS,
                         max_frames: int = 256) -> int:
    """Heuristic batch size: the power of two that reaches ``target_batch_flops`` of work, capped by
    memory (``memory_gb`` free for activations / ``activation_gb_per_frame``; when that is unknown,
    ~1 GB per 2 TFLOP per frame-batch is assumed, a conservative ViT-L figure) and ``max_frames``."""
    if model_flops_per_frame <= 0 or memory_gb <= 0:
        raise ValueError("model_flops_per_frame and memory_gb must be positive")
    want = max(1, math.ceil(target_batch_flops / model_flops_per_frame))
    per_frame_gb = activation_gb_per_frame if activation_gb_per_frame else model_flops_per_frame / 2e12
    cap = max(1, int(memory_gb / per_frame_gb))
    frames = min(want, cap, max_frames)
    return 1 << (frames.bit_length() - 1)        # round down to a power of two (within the cap)


def probe_batch_frames(runner: TorchBatchRunner, frame_shape: Sequence[int],
                       candidates: Sequence[int] = (8, 16, 32, 64, 128, 256), *, iters: int = 2,
                       min_gain: float = 1.05) -> dict:
    """Time ``runner.run_device`` on random device-resident uint8 frames of ``frame_shape`` (3, H, W)
    at each candidate batch size; stop at OOM or when throughput gains < ``min_gain``. Returns
    {"batch_frames": best, "frames_per_s": {batch: fps}} and sets ``runner.batch_frames`` to best."""
    import torch
    results: dict[int, float] = {}
    best, best_fps = runner.batch_frames, 0.0
    for b in candidates:
        try:
            x = torch.randint(0, 256, (b, *frame_shape), dtype=torch.uint8, device=runner.device)
            old = runner.batch_frames
            runner.batch_frames = b
            runner.run_device(x)                       # warm-up (allocator, autotuning)
            _sync(runner.device)
            t = time.perf_counter()
            for _ in range(iters):
                runner.run_device(x)
            _sync(runner.device)
            fps = b * iters / (time.perf_counter() - t)
            runner.batch_frames = old
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        results[b] = fps
        if fps > best_fps * min_gain:
            best, best_fps = b, fps
        else:
            break
    runner.batch_frames = best
    return {"batch_frames": best, "frames_per_s": results}


def _sync(device: str) -> None:
    import torch
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
