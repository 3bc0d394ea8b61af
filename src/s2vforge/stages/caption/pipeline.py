"""The caption stage: every kept clip -> one row of captions.parquet.

For each kept clip of clips.parquet:

1. a manifest caption (the video's `caption`) passes through as captioner "manifest" when the
   recipe says `caption.manifest: pass_through`; its tags come from the embedded phrase
   extractor (subjects/phrases.py);
2. otherwise `caption.frames.n` frames spread evenly over the clip file are decoded once and
   every captioner of `caption.captioners` (base.Captioner: facts, endpoint, reference)
   captions them; with several, vote.py keeps the one that agrees best with the frames
   (OpenHumanVid's choice);
3. the row records who captioned (captioner, model, prompt_id), the agreement score where a
   scorer ran, and every quality verdict.

CaptionStage is this under the stage contract: one kept clip per item, captioners set up once
per worker, rows committed by the driver. The endpoint captioner also keeps a per-request cache
under DATASET/.work/caption/requests/, so a killed run never sends an answered request again.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ...engine.stage import Context, Output, Resources, Stage, StageRun
from ...schema import CAPTION_SCHEMA, TableSpec
from .base import Caption, Captioner, ClipInput

CAPTIONERS = ("facts", "endpoint", "reference")
REQUEST_CACHE = Path(".work") / "caption" / "requests"


class ClipUnreadable(Exception):
    pass


def caption_config(recipe: dict | None) -> dict:
    from ...recipes import section
    return section(recipe, "caption")


def caption_items(dataset: Path) -> list[dict]:
    """Every kept clip with a file, with its video's manifest caption."""
    dataset = Path(dataset)
    clips_path = dataset / "clips.parquet"
    if not clips_path.exists():
        raise FileNotFoundError(f"{clips_path} not found: run `s2vforge curate ... --out {dataset}` first")
    videos = {}
    if (dataset / "videos.parquet").exists():
        videos = {v["video_id"]: v for v in pq.read_table(dataset / "videos.parquet",
                                                           columns=["video_id", "caption"]).to_pylist()}
    items = []
    for c in pq.read_table(clips_path).to_pylist():
        if not c.get("keep") or not c.get("path"):
            continue
        measured = {k: v for k, v in c.items() if k.startswith("score_") or k in (
            "duration_s", "start_s", "end_s", "start_frame", "end_frame", "crop")}
        items.append({"clip_id": c["clip_id"], "video_id": c.get("video_id"), "path": c["path"],
                      "caption": c.get("caption") or (videos.get(c.get("video_id")) or {}).get("caption"),
                      "measured": measured})
    return items


def sample_frames(path: Path, n: int, long_side: int) -> tuple[list[np.ndarray], list[float], float, tuple[int, int]]:
    """n frames spread evenly over the clip (one forward decode): (frames, times, fps, (w, h))."""
    import av

    from ...media.decode import fit_size, frame_to_rgb, open_video
    try:
        container, stream = open_video(path)
    except (av.FFmpegError, OSError, IndexError) as e:
        raise ClipUnreadable(f"cannot open {path.name}: {e}") from None
    with container:
        total = int(stream.frames or 0)
        fps = float(stream.average_rate or 25.0)
        w, h = stream.codec_context.width, stream.codec_context.height
        size = fit_size(w, h, long_side)
        if total <= 0:
            raise ClipUnreadable(f"{path.name} declares no frames")
        want = sorted({int(round(x)) for x in np.linspace(0, total - 1, max(1, min(n, total)))})
        frames, times = [], []
        try:
            for i, frame in enumerate(container.decode(stream)):
                if i in want:
                    rot = int(round(frame.rotation or 0)) % 360
                    frames.append(frame_to_rgb(frame, size, rot))
                    times.append(i / fps)
                if i >= want[-1]:
                    break
        except av.FFmpegError as e:
            if not frames:
                raise ClipUnreadable(f"{path.name} does not decode: {e}") from None
    if not frames:
        raise ClipUnreadable(f"no frame of {path.name} decoded")
    return frames, times, fps, (w, h)


def make_captioner(name: str, cfg: dict, recipe: dict | None = None) -> Captioner:
    """The captioner called `name`, configured from the recipe's caption section (facts also
    uses the recipe's subjects.detect detectors)."""
    if name == "facts":
        from ...recipes import section
        from .facts import FactsCaptioner
        return FactsCaptioner(cfg, section(recipe, "subjects")["detect"])
    if name == "endpoint":
        from .endpoint import EndpointCaptioner
        return EndpointCaptioner(cfg)
    if name == "reference":
        from .reference import ReferenceCaptioner
        return ReferenceCaptioner(cfg)
    raise ValueError(f"unknown captioner {name!r}: use one or more of {', '.join(CAPTIONERS)} "
                     "(--captioner facts,endpoint)")


def manifest_caption(text: str) -> Caption:
    """A caption the user brought: kept as the long caption, first sentence as the short one,
    tags from the embedded phrase extractor."""
    from ..subjects.phrases import extract_phrases
    from .prompts import first_sentence
    text = " ".join(str(text).split())
    cap = Caption(short=first_sentence(text), long=text, captioner="manifest")
    try:
        pres = extract_phrases(text, "spacy")
    except Exception as e:       # no spaCy model: the caption is still kept, without tags
        cap.verdicts.append(f"tags_unavailable: {type(e).__name__}")
        return cap
    for p in pres.subjects:
        if p.source == "fixed":
            continue
        (cap.subject_tags if p.category in ("person", "face", "animal") else
         cap.background_tags if p.category == "background" else cap.object_tags).append(p.text)
    cap.verdicts.extend(pres.verdicts)
    return cap


class CaptionStage(Stage):
    name = "caption"
    published = ("captions",)
    resources = Resources(num_cpus=1, actors="auto")

    def __init__(self, recipe: dict | None) -> None:
        self.cfg = caption_config(recipe)
        names = self.cfg["captioners"]
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        if not names:
            raise ValueError("caption.captioners is empty: name at least one of " + ", ".join(CAPTIONERS))
        bad = [n for n in names if n not in CAPTIONERS]
        if bad:
            raise ValueError(f"unknown captioner {bad[0]!r}: use one or more of {', '.join(CAPTIONERS)}")
        if self.cfg["manifest"] not in ("pass_through", "ignore"):
            raise ValueError(f"caption.manifest must be pass_through or ignore, got {self.cfg['manifest']!r}")
        self.names = list(names)
        self.tables = {"captions": TableSpec(CAPTION_SCHEMA, "clip_id")}
        self._captioners: list[Captioner] | None = None
        self._scorer = None
        self.recipe = recipe
        self._described = [make_captioner(n, self.cfg, recipe).config() for n in self.names]   # no model loads here

    def config(self) -> dict:
        return {"captioners": self._described, "manifest": self.cfg["manifest"], "frames": self.cfg["frames"],
                "vote": self.cfg["vote"] if len(self.names) > 1 else None, "quality": self.cfg["quality"]}

    def key(self, item: dict) -> str:
        return item["clip_id"]

    def setup(self) -> None:
        self._captioners = [make_captioner(n, self.cfg, self.recipe) for n in self.names]
        for c in self._captioners:
            c.setup()
        if len(self._captioners) > 1:
            from .vote import make_scorer
            self._scorer = make_scorer(self.cfg)

    def process(self, item: dict, ctx: Context) -> Output:
        t0 = time.perf_counter()
        if item.get("caption") and self.cfg["manifest"] == "pass_through":
            return self._output(item, manifest_caption(item["caption"]), t0)
        fcfg = self.cfg["frames"]
        try:
            frames, times, fps, size = sample_frames(ctx.dataset / item["path"], int(fcfg["n"]),
                                                     int(fcfg["long_side"]))
        except ClipUnreadable as e:
            return self.error_output(item, str(e))
        measured = dict(item.get("measured") or {})
        clip = ClipInput(clip_id=item["clip_id"], path=ctx.dataset / item["path"], frames=frames, times=times,
                         duration_s=float(measured.get("duration_s") or len(frames) / max(fps, 1e-6)), fps=fps,
                         size=size, manifest_caption=item.get("caption"), measured=measured,
                         cache_dir=ctx.dataset / REQUEST_CACHE)
        if self._captioners is None:
            self.setup()
        candidates = [c.caption(clip) for c in self._captioners]
        if len(candidates) == 1:
            cap = candidates[0]
        else:
            from .vote import vote
            cap = vote(clip, candidates, self._scorer)
            cap.n_requests = sum(c.n_requests for c in candidates)
        return self._output(item, cap, t0)

    def error_output(self, item: dict, message: str) -> Output:
        cap = Caption(captioner=",".join(self.names), error=message)
        return self._output(item, cap, time.perf_counter())

    def _output(self, item: dict, cap: Caption, t0: float) -> Output:
        row = cap.row(item["clip_id"])
        row["video_id"] = item.get("video_id")
        ok = cap.error is None and (cap.long or cap.short)
        meta = {"clip_id": item["clip_id"], "status": "ok" if ok else "error",
                "error": None if ok else (cap.error or "no usable caption: " + ", ".join(cap.verdicts)),
                "captioner": cap.captioner, "verdicts": list(cap.verdicts), "n_requests": cap.n_requests,
                "seconds": round(time.perf_counter() - t0, 4),
                "retry": cap.error is not None}     # no caption (an endpoint down): tried again next run
        return Output(rows={"captions": [row]}, meta=meta)

    def summarize(self, run: StageRun) -> dict:
        verdicts: Counter = Counter()
        captioners: Counter = Counter()
        requests = 0
        for m in run.metas.values():
            verdicts.update(v.split(":")[0] for v in m.get("verdicts") or [])
            captioners[m.get("captioner") or "?"] += 1
            requests += int(m.get("n_requests") or 0)
        return {"n_captions": run.tables["captions"].num_rows, "captioners": dict(sorted(captioners.items())),
                "verdict_counts": dict(sorted(verdicts.items())), "n_requests_sent": requests}
