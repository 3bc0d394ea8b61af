"""GmeScore: text-video alignment as the mean GME cosine between the prompt and 32 frames.

OpenS2V-Eval get_gmescore.py: the prompt embedded as a query with the instruction "Find an
image that matches the given text.", each of `linspace(0, T-1, 32)` frames embedded as a
corpus image, raw value = mean dot product of the L2-normalised embeddings (normalised later
as min(x, 1)). The official script embeds the same prompt 32 times; we embed it once (same
vector). Recipe details of the embedding: s2vforge.backends.gme.

backend="gme" (reference, name `gme`; `variant="2b"` is a stand-in named `gme_2b`, same
family and scale but not the leaderboard's model) or backend="clip" (stand-in, name
`gme_clip`: CLIP cosines are on another scale and must never be mixed with GmeScore).
"""
from __future__ import annotations

import numpy as np

from .base import Sample, Video

N_FRAMES = 32   # OpenS2V-Eval get_gmescore.py --num_frames


class GmeScore:
    """Raw value: mean cosine(GME(prompt as query), GME(frame)) over 32 uniform frames."""
    name = "gme"              # instance value depends on the backend (gme | gme_2b | gme_clip)
    comparable = True         # GME-7B with 32 frames only
    same_scale = True         # False for CLIP: its cosines are never normalised as GmeScore

    def __init__(self, backend: str = "gme", model_dir=None, variant: str = "7b", device: str = "cpu", dtype=None,
                 n_frames: int = N_FRAMES, batch_size: int | None = None, fast_preprocess: bool = False,
                 embedder=None) -> None:
        if backend not in ("gme", "clip"):
            raise ValueError(f"GmeScore backend must be 'gme' or 'clip' (got {backend!r})")
        variant = str(variant).lower()
        if backend == "gme" and variant not in ("7b", "2b"):
            raise ValueError(f"GME variant must be '7b' or '2b' (got {variant!r})")
        self.backend = backend
        self.name = "gme_clip" if backend == "clip" else ("gme" if variant == "7b" else f"gme_{variant}")
        self.n_frames = int(n_frames)
        # get_gmescore.py: gme-Qwen2-VL-7B-Instruct on 32 frames
        self.comparable = self.name == "gme" and self.n_frames == N_FRAMES
        self.same_scale = backend == "gme"
        self.model_dir, self.variant = model_dir, variant
        self.device, self.dtype = device, dtype
        self.batch_size = batch_size
        self.fast_preprocess = fast_preprocess      # torchvision image processor on the GPU (see backends.gme)
        self.embedder = embedder

    def settings(self) -> dict:
        """What decides the values (the runner records it and never mixes rows of other settings)."""
        out = {"backend": self.backend, "n_frames": self.n_frames}
        if self.backend == "gme":
            out["variant"] = self.variant
        return out

    def load(self) -> None:
        if self.embedder is None:
            from ....backends.gme import load_image_text_embedder
            self.embedder = load_image_text_embedder(self.backend, self.model_dir, variant=self.variant,
                                                     device=self.device, dtype=self.dtype, batch_size=self.batch_size,
                                                     fast_preprocess=self.fast_preprocess)

    def applies_to(self, sample: Sample) -> bool:
        return bool(sample.prompt)

    def compute_record(self, video: Video, sample: Sample) -> dict:
        from ....backends.gme import GME_QUERY_INSTRUCTION
        self.load()
        q = self.embedder.embed_texts([sample.prompt], instruction=GME_QUERY_INSTRUCTION)
        frames = self.embedder.embed_images(list(video.uniform(self.n_frames)))
        sims = (frames @ q[0]).astype(np.float64)
        return {"value": float(sims.mean()), "details": {"n_frames": int(sims.size), "min": float(sims.min()),
                                                          "max": float(sims.max()), "metric": self.name}}

    def compute(self, video: Video, sample: Sample) -> float | None:
        return self.compute_record(video, sample)["value"]
