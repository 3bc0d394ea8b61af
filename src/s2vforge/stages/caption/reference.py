"""The reference captioner: Qwen2.5-VL (or Qwen2-VL) through transformers, from local weights.

OpenS2V-Nexus captions every clip with Qwen2.5-VL-7B-Instruct (data_process/step3-1_get_caption.py):
the clip goes in as ONE video input (frames sampled evenly over the clip, each resized by
qwen_vl_utils to min 16*28*28 / max 768*28*28 pixels), greedy-like decoding (temperature 0.1,
top_p 0.001, repetition_penalty 1.05), at most 512 new tokens. We do the same with the frames the
stage sampled (`ClipInput.frames`, `caption.frames.n` of them): `caption.reference.input: video`
(the default) sends them as one video, so Qwen2.5-VL's M-RoPE sees their times
(`second_per_grid_ts` = 2 frames / the sampling rate); `input: images` sends one image per frame.

    cap = ReferenceCaptioner(caption_cfg)            # the recipe's caption section (or a part of it)
    cap.setup()                                      # loads model + tokenizer once (device/dtype from the recipe)
    one = cap.caption(clip)                          # ClipInput -> Caption
    many = cap.caption_batch(clips)                  # several clips per generate() (left padding)

Where the weights are: `caption.reference.model_dir`, else $S2VFORGE_MODELS/Qwen2.5-VL-7B-Instruct,
~/.cache/s2vforge/models/..., the HF cache of `Qwen/Qwen2.5-VL-7B-Instruct`; the architecture is
read from the folder's config.json (`model_type` qwen2_5_vl or qwen2_vl). Nothing is downloaded;
missing weights raise ModelNotFound naming the model, every place searched, $S2VFORGE_MODELS and
`--models DIR`.

Preprocessing is ours and needs neither torchvision nor qwen_vl_utils: uint8 frames go to the
model's device, are resized there (bicubic, antialiased, rounded to uint8 values: what
qwen_vl_utils' torchvision resize gives) to sides that are multiples of 28 within
[min_pixels, max_pixels], normalised with the folder's preprocessor_config.json mean/std and cut
into Qwen2-VL's patch layout (the same layout as transformers' Qwen2-VL image processor; a test
checks them equal). `<|video_pad|>` / `<|image_pad|>` are expanded to the number of merged visual
tokens, as Qwen2VLProcessor does.

Short / long / structured: when the prompt (stages/caption/prompts.py `load_prompt`, or an object
with `.caption_text`, `.reformat_text`, `.id`) has a reformat text and `reformat: auto`, a second,
text-only generation rewrites the caption, and its JSON answer fills short / long / structured;
otherwise (or when that answer is no JSON) the caption is split into sentences deterministically
(first sentence = short, the whole caption = long, structured left unknown).

`finish` of each generation is "stop" (an end token came) or "length" (max_new_tokens reached:
verdict `truncated`). Quality verdicts come from stages/caption/quality.py `review`, as for the
endpoint captioner.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import STRUCTURED_FIELDS, Caption, Captioner, ClipInput

DEFAULT_MODEL = ("Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct")     # (local folder name, HF repo)
MODEL_CLASSES = {
    "qwen2_5_vl": ("transformers:Qwen2_5_VLForConditionalGeneration",),
    "qwen2_vl": ("transformers:Qwen2VLForConditionalGeneration",),
}
# Qwen2-VL's default system turn (its chat template adds it when the messages bring none)
QWEN_SYSTEM = "You are a helpful assistant."
# used only when neither stages/caption/prompts.py nor the caller gives a caption prompt (ours)
FALLBACK_PROMPT = ("Describe this video in plain sentences. Start with the main subject (a concrete noun), then "
                   "its appearance, what it does, the other objects, the background and the camera motion.")
FALLBACK_PROMPT_ID = "reference-fallback"
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Sides rounded to multiples of `factor` with the area kept within [min_pixels, max_pixels]
    (Qwen2-VL's rule, as in its processors and qwen_vl_utils)."""
    if max(height, width) / max(1, min(height, width)) > 200:
        raise ValueError(f"aspect ratio of {width}x{height} exceeds 200")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def patchify(x, patch: int, merge: int, temporal: int):
    """(T, C, H, W) float frames (T a multiple of `temporal`, H and W of patch*merge) ->
    ((T/temporal)*(H/patch)*(W/patch), C*temporal*patch*patch), rows in Qwen2-VL's order
    (time, merged row, merged column, row inside the merge window, column inside it)."""
    t, c, h, w = x.shape
    gt, gh, gw = t // temporal, h // patch, w // patch
    x = x.reshape(gt, temporal, c, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, c * temporal * patch * patch), (gt, gh, gw)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(" ".join(str(text).split())) if s.strip()]


def _prompt_attr(prompt, name: str):
    return getattr(prompt, name, None) if not isinstance(prompt, dict) else prompt.get(name)


class ReferenceCaptioner(Captioner):
    """Qwen2.5-VL / Qwen2-VL captions from a local folder (see the module docstring)."""
    name = "reference"

    def __init__(self, cfg: dict | None = None, *, prompt: Any = None, prompt_text: str | None = None,
                 reformat_text: str | None = None, prompt_id: str | None = None) -> None:
        from ...recipes import section
        full = dict(cfg or {})
        if "reference" not in full and any(k in full for k in ("model_dir", "max_new_tokens", "device")):
            full = {"reference": full}          # given the reference block itself
        self.cfg_all = section({"caption": full}, "caption")      # deep-merged over the recipe defaults
        self.cfg = self.cfg_all["reference"]
        if self.cfg["input"] not in ("video", "images"):
            raise ValueError(f"caption.reference.input must be video or images, got {self.cfg['input']!r}")
        if self.cfg["reformat"] not in ("auto", "sentences"):
            raise ValueError(f"caption.reference.reformat must be auto or sentences, got {self.cfg['reformat']!r}")
        self.prompt = self._resolve_prompt(prompt, prompt_text, reformat_text, prompt_id)
        self.model = Path(self.cfg["model_dir"]).name if self.cfg["model_dir"] else DEFAULT_MODEL[1]
        self.model_dir: Path | None = None
        self.model_type: str | None = None
        self._model = None
        self._tok = None

    # ------------------------------------------------------------------ configuration
    def _resolve_prompt(self, prompt, prompt_text, reformat_text, prompt_id):
        """(caption text, reformat text or None, prompt id); keeps the prompt object (self._prompt_obj)
        for its reformat_request / parse_answer when it has them (stages/caption/prompts.Prompt)."""
        self._prompt_obj = None
        if prompt is None and prompt_text is None:
            prompt = self.cfg_all.get("prompt")
        if isinstance(prompt, (str, Path)) and prompt_text is None:
            from .prompts import load_prompt
            prompt = load_prompt(str(prompt))
        if prompt is not None and not isinstance(prompt, (str, Path)):
            self._prompt_obj = prompt
            pid = prompt_id or _prompt_attr(prompt, "prompt_id") or _prompt_attr(prompt, "id") or FALLBACK_PROMPT_ID
            return (prompt_text or _prompt_attr(prompt, "caption_text") or FALLBACK_PROMPT,
                    reformat_text or _prompt_attr(prompt, "reformat_text") or None, str(pid))
        return (prompt_text or FALLBACK_PROMPT, reformat_text,
                prompt_id or (FALLBACK_PROMPT_ID if prompt_text is None else "custom"))

    def config(self) -> dict:
        keys = ("model_dir", "dtype", "input", "min_pixels", "max_pixels", "max_new_tokens", "repetition_penalty",
                "reformat", "reformat_max_new_tokens")
        caption_text, reformat, pid = self.prompt
        return {"name": self.name, "model": self.model, "prompt_id": pid,
                "prompt": caption_text, "reformat_prompt": reformat,
                "device": str(self.cfg["device"]).split(":")[0], **{k: self.cfg[k] for k in keys}}

    # ------------------------------------------------------------------ loading
    def find_model_dir(self) -> Path:
        from ...backends.paths import find_model_dir
        return find_model_dir(DEFAULT_MODEL[0], DEFAULT_MODEL[1], explicit=self.cfg["model_dir"],
                              model_label=f"{DEFAULT_MODEL[1]} (the reference captioner's Qwen2.5-VL / Qwen2-VL)")

    def setup(self) -> None:
        if self._model is not None:
            return
        from ...backends.errors import BackendUnavailable
        from ...backends.hf import import_first, quiet_transformers, require_torch_transformers, resolve_torch_dtype
        require_torch_transformers("the reference captioner")
        import torch
        from transformers import AutoTokenizer
        root = self.find_model_dir()
        model_type = json.loads((root / "config.json").read_text()).get("model_type")
        if model_type not in MODEL_CLASSES:
            raise BackendUnavailable(f"{root.name} (model_type {model_type!r})", [str(root)],
                                     "The reference captioner loads Qwen2.5-VL (qwen2_5_vl) or Qwen2-VL (qwen2_vl) "
                                     "checkpoints only.")
        cls = import_first(f"{model_type} for the reference captioner", *MODEL_CLASSES[model_type])
        device = str(self.cfg["device"] or "cpu")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = resolve_torch_dtype(self.cfg["dtype"], device)
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(str(root))
            model = cls.from_pretrained(str(root), dtype=dtype, attn_implementation=self.cfg["attn_implementation"])
        model.to(device).eval()
        pre = {}
        if (root / "preprocessor_config.json").is_file():
            pre = json.loads((root / "preprocessor_config.json").read_text())
        self._attach(model, tok, pre, self._chat_template(root, tok), model_type, device, dtype)
        self.model_dir = root
        self.model = root.name if root.parent.name != "snapshots" else DEFAULT_MODEL[1]

    @classmethod
    def from_model(cls, model, tokenizer, cfg: dict | None = None, *, preprocessor: dict | None = None,
                   chat_template: str | None = None, name: str | None = None, **prompt) -> "ReferenceCaptioner":
        """A captioner around a model already built in memory (benchmarks/bench_caption_gpu.py: random
        weights of the real 7B architecture); the same preprocessing and generation code as setup()."""
        self = cls(cfg, **prompt)
        p = next(model.parameters())
        self._attach(model.eval(), tokenizer, preprocessor or {},
                     chat_template or getattr(tokenizer, "chat_template", None), model.config.model_type,
                     str(p.device), p.dtype)
        self.model = name or model.config.model_type
        return self

    def _attach(self, model, tok, pre: dict, template: str | None, model_type: str, device: str, dtype) -> None:
        import torch
        tok.padding_side = "left"
        vcfg = model.config.vision_config
        self._patch = int(getattr(vcfg, "patch_size", None) or pre.get("patch_size", 14))
        self._merge = int(getattr(vcfg, "spatial_merge_size", None) or pre.get("merge_size", 2))
        self._temporal = int(getattr(vcfg, "temporal_patch_size", None) or pre.get("temporal_patch_size", 2))
        self._mean = torch.tensor(pre.get("image_mean", [0.48145466, 0.4578275, 0.40821073]),
                                  device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(pre.get("image_std", [0.26862954, 0.26130258, 0.27577711]),
                                 device=device).view(1, 3, 1, 1)
        self._template = template
        ids = tok.convert_tokens_to_ids
        self._stop = [i for i in {ids("<|im_end|>"), ids("<|endoftext|>"), tok.eos_token_id}
                      if isinstance(i, int) and i >= 0 and i != tok.unk_token_id]
        self._pad = tok.pad_token_id if tok.pad_token_id is not None else ids("<|endoftext|>")
        self._model, self._tok = model, tok
        self._device, self._dtype = device, dtype
        self.model_type = model_type

    @staticmethod
    def _chat_template(root: Path, tok) -> str | None:
        """The folder's chat template: the tokenizer's, else chat_template.json / .jinja (processor files)."""
        if getattr(tok, "chat_template", None):
            return tok.chat_template
        if (root / "chat_template.json").is_file():
            return json.loads((root / "chat_template.json").read_text()).get("chat_template")
        if (root / "chat_template.jinja").is_file():
            return (root / "chat_template.jinja").read_text()
        return None

    # ------------------------------------------------------------------ prompts
    def _render(self, content: list[dict]) -> str:
        messages = [{"role": "user", "content": content}]
        if self._template:
            return self._tok.apply_chat_template(messages, chat_template=self._template, tokenize=False,
                                                 add_generation_prompt=True)
        body = "".join("<|vision_start|><|video_pad|><|vision_end|>" if p["type"] == "video" else
                       "<|vision_start|><|image_pad|><|vision_end|>" if p["type"] == "image" else p["text"]
                       for p in content)
        return (f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\n{body}<|im_end|>\n"
                f"<|im_start|>assistant\n")

    def _visual(self, clip: ClipInput):
        """(chat content, pixel values, grid rows, seconds per temporal grid or None) for one clip."""
        import torch
        frames = [np.asarray(f) for f in clip.frames]
        if not frames:
            raise ValueError("the clip has no sampled frames")
        h0, w0 = frames[0].shape[:2]
        x = torch.from_numpy(np.stack([f if f.shape[:2] == (h0, w0) else _fit(f, h0, w0) for f in frames]))
        x = x[..., :3].to(self._device, non_blocking=True).permute(0, 3, 1, 2).float()     # uint8 on the wire
        rh, rw = smart_resize(h0, w0, self._patch * self._merge, int(self.cfg["min_pixels"]),
                              int(self.cfg["max_pixels"]))
        if (rh, rw) != (h0, w0):
            x = torch.nn.functional.interpolate(x, size=(rh, rw), mode="bicubic", antialias=True,
                                                align_corners=False).round_().clamp_(0, 255)
        x = (x / 255.0 - self._mean) / self._std
        if self.cfg["input"] == "images":
            pix, grids = [], []
            for i in range(x.shape[0]):
                p, g = patchify(x[i:i + 1].expand(self._temporal, -1, -1, -1), self._patch, self._merge,
                                self._temporal)
                pix.append(p)
                grids.append(g)
            content = [{"type": "image"} for _ in grids] + [{"type": "text", "text": self.prompt[0]}]
            return content, torch.cat(pix).to(self._dtype), grids, None
        if x.shape[0] % self._temporal:            # pad by repeating the last frame (as the HF video processor)
            x = torch.cat([x, x[-1:].expand(self._temporal - x.shape[0] % self._temporal, -1, -1, -1)])
        pix, grid = patchify(x, self._patch, self._merge, self._temporal)
        n = len(frames)
        span = float(clip.duration_s or 0.0)
        if span <= 0 and len(clip.times) > 1:
            span = float(clip.times[-1] - clip.times[0]) * n / max(1, n - 1)
        sample_fps = n / span if span > 0 else 1.0        # step3-1: nframes / total_frames * video_fps
        content = [{"type": "video"}, {"type": "text", "text": self.prompt[0]}]
        return content, pix.to(self._dtype), [grid], self._temporal / sample_fps

    def _expand(self, text: str, kind: str, grids: list[tuple[int, int, int]]) -> str:
        """Each `<|kind_pad|>` placeholder -> as many pads as that visual input has merged tokens."""
        pad = f"<|{kind}_pad|>"
        parts = text.split(pad)
        if len(parts) - 1 != len(grids):
            raise ValueError(f"the chat template gave {len(parts) - 1} {pad} placeholders for {len(grids)} inputs")
        out = parts[0]
        for g, rest in zip(grids, parts[1:]):
            out += pad * (g[0] * g[1] * g[2] // (self._merge ** 2)) + rest
        return out

    # ------------------------------------------------------------------ generation
    def _generate(self, texts: list[str], max_new_tokens: int, visual: dict | None = None,
                  min_new_tokens: int | None = None) -> list[tuple[str, str, int]]:
        """Left-padded batch -> [(text, finish, n_new_tokens)]; finish = stop | length."""
        import torch
        enc = [self._tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        width = max(len(e) for e in enc)
        ids = torch.full((len(enc), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for i, e in enumerate(enc):
            ids[i, width - len(e):] = torch.tensor(e, dtype=torch.long)
            mask[i, width - len(e):] = 1
        kwargs = dict(input_ids=ids.to(self._device), attention_mask=mask.to(self._device),
                      max_new_tokens=int(max_new_tokens), do_sample=False, num_beams=1,
                      temperature=None, top_p=None, top_k=None,
                      repetition_penalty=float(self.cfg["repetition_penalty"]),
                      eos_token_id=self._stop, pad_token_id=self._pad)
        if min_new_tokens:
            kwargs["min_new_tokens"] = int(min_new_tokens)
        kwargs.update(visual or {})
        with torch.inference_mode():
            out = self._model.generate(**kwargs)
        new = out[:, width:].cpu().tolist()
        results = []
        for row in new:
            n = len(row)
            for j, t in enumerate(row):
                if t in self._stop:
                    n = j
                    break
            finish = "stop" if n < len(row) else "length"
            text = self._tok.decode(row[:n], skip_special_tokens=True)
            results.append((text.strip(), finish, n))
        return results

    def _caption_inputs(self, clips: Sequence[ClipInput]):
        import torch
        texts, pix, grids, seconds = [], [], [], []
        kind = "image" if self.cfg["input"] == "images" else "video"
        for clip in clips:
            content, p, g, sec = self._visual(clip)
            texts.append(self._expand(self._render(content), kind, g))
            pix.append(p)
            grids.extend(g)
            if sec is not None:
                seconds.append(sec)
        grid = torch.tensor(grids, dtype=torch.long, device=self._device)
        if kind == "image":
            visual = {"pixel_values": torch.cat(pix), "image_grid_thw": grid}
        else:
            visual = {"pixel_values_videos": torch.cat(pix), "video_grid_thw": grid}
            if self.model_type == "qwen2_5_vl":
                visual["second_per_grid_ts"] = torch.tensor(seconds, dtype=torch.float32, device=self._device)
        return texts, visual

    def generate_raw(self, clips: Sequence[ClipInput], max_new_tokens: int | None = None,
                     min_new_tokens: int | None = None) -> list[tuple[str, str, int]]:
        """One generate() over these clips: [(caption text, finish, new tokens)] (the benchmark's entry)."""
        self.setup()
        texts, visual = self._caption_inputs(clips)
        return self._generate(texts, int(max_new_tokens or self.cfg["max_new_tokens"]), visual, min_new_tokens)

    # ------------------------------------------------------------------ the contract
    def caption(self, clip: ClipInput) -> Caption:
        return self.caption_batch([clip])[0]

    def caption_batch(self, clips: Sequence[ClipInput]) -> list[Caption]:
        """Captions for several clips, `batch_size` clips per generate(); one clip's trouble becomes
        that clip's Caption.error (a failed batch is retried clip by clip)."""
        self.setup()
        clips = list(clips)
        out: list[Caption] = []
        bs = max(1, int(self.cfg["batch_size"]))
        for i in range(0, len(clips), bs):
            chunk = clips[i:i + bs]
            try:
                raw = self.generate_raw(chunk)
            except Exception as e:                      # noqa: BLE001 - recorded per clip below
                if len(chunk) == 1:
                    out.append(self._error(f"{type(e).__name__}: {e}"))
                    continue
                out.extend(self.caption_batch_one_by_one(chunk))
                continue
            out.extend(self._finish(chunk, raw))
        return out

    def caption_batch_one_by_one(self, clips: Sequence[ClipInput]) -> list[Caption]:
        res = []
        for clip in clips:
            try:
                res.extend(self._finish([clip], self.generate_raw([clip])))
            except Exception as e:                      # noqa: BLE001
                res.append(self._error(f"{type(e).__name__}: {e}"))
        return res

    def _error(self, message: str) -> Caption:
        return Caption(captioner=self.name, model=self.model, prompt_id=self.prompt[2], error=message[:500])

    def _finish(self, clips: Sequence[ClipInput], raw: list[tuple[str, str, int]]) -> list[Caption]:
        caps = []
        for clip, (text, finish, _n) in zip(clips, raw):
            cap = Caption(captioner=self.name, model=self.model, prompt_id=self.prompt[2])   # local: no requests
            cap.long, cap.verdicts = self._review(text, finish, clip)
            caps.append(cap)
        self._reformat(caps, clips)
        return caps

    def _review(self, text: str, finish: str, clip: ClipInput) -> tuple[str | None, list[str]]:
        """stages/caption/quality.py's review: reject or repair, with verdicts."""
        from .quality import people_detected, review
        r = review(text or None, finish, people_detected=people_detected(clip.measured),
                   cfg=self.cfg_all.get("quality"))
        return r.text, list(r.verdicts)

    def _reformat(self, caps: list[Caption], clips: Sequence[ClipInput]) -> None:
        reformat = self.prompt[1]
        todo = [(c, clip) for c, clip in zip(caps, clips) if c.long]
        if reformat and self.cfg["reformat"] == "auto" and todo:
            obj = self._prompt_obj
            request = getattr(obj, "reformat_request", None)
            texts = [self._render([{"type": "text", "text": request(c.long, face=_has_faces(clip))
                                    if callable(request) else _fill(reformat, c.long)}]) for c, clip in todo]
            try:
                answers = self._generate(texts, int(self.cfg["reformat_max_new_tokens"]))
            except Exception as e:                      # noqa: BLE001 - the step-1 captions are still kept
                answers = [("", f"error: {type(e).__name__}", 0)] * len(todo)
            parse = getattr(obj, "parse_answer", None)
            for (cap, _clip), (text, finish, _n) in zip(todo, answers):
                if finish.startswith("error"):
                    cap.verdicts.append(f"reformat_failed: {finish[7:]}")
                    split_caption(cap)
                elif callable(parse):
                    apply_parsed(cap, parse(text, cap.long))
                elif not apply_structured(cap, text):
                    cap.verdicts.append("reformat_unreadable")
                    split_caption(cap)
                if finish == "length":
                    cap.verdicts.append("reformat_truncated")
            return
        for c, _clip in todo:
            split_caption(c)


def _has_faces(clip: ClipInput) -> bool:
    v = (clip.measured or {}).get("n_faces")
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _fit(frame: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.fromarray(np.ascontiguousarray(frame[..., :3])).resize((w, h), Image.BICUBIC))


def _fill(template: str, caption: str) -> str:
    if "{caption}" in template:
        return template.replace("{caption}", caption)
    return f"{template.rstrip()}\n\n{caption}"


def split_caption(cap: Caption) -> None:
    """Deterministic fallback: first sentence = short, the whole caption = long, structured unknown."""
    sents = split_sentences(cap.long or "")
    cap.long = " ".join(sents) or None
    cap.short = sents[0] if sents else None


def apply_parsed(cap: Caption, parsed) -> None:
    """Copy a prompts.ParsedAnswer (duck-typed) onto the caption."""
    for k in ("short", "long", "face_caption"):
        if getattr(parsed, k, None) is not None:
            setattr(cap, k, getattr(parsed, k))
    for k, v in (getattr(parsed, "structured", None) or {}).items():
        if k in cap.structured and v is not None:
            cap.structured[k] = v
    for k in ("subject_tags", "object_tags", "background_tags"):
        if getattr(parsed, k, None):
            setattr(cap, k, list(getattr(parsed, k)))
    cap.verdicts.extend(v for v in getattr(parsed, "verdicts", []) or [] if v not in cap.verdicts)


def apply_structured(cap: Caption, text: str) -> bool:
    """Fill short / long / structured from a reformat answer holding one JSON object; False when none."""
    from .prompts import parse_json_object      # the one reader of JSON in an LLM answer
    data = parse_json_object(text)
    if data is None:
        return False
    low = {str(k).strip().lower().replace(" ", "_"): v for k, v in data.items()}
    struct = low.get("structured") if isinstance(low.get("structured"), dict) else low
    struct = {str(k).strip().lower().replace(" ", "_"): v for k, v in struct.items()}
    aliases = {"appearance": ("appearance", "human_appearance"), "action": ("action", "human_motion", "motion"),
               "face_motion": ("face_motion",), "environment": ("environment", "background"),
               "subjects": ("subjects",), "camera": ("camera", "camera_motion")}
    found = False
    for field in STRUCTURED_FIELDS:
        for a in aliases.get(field, (field,)):
            if struct.get(a) not in (None, ""):
                cap.structured[field] = struct[a]
                found = True
                break
    short, long = low.get("short") or low.get("short_caption"), low.get("long") or low.get("long_caption")
    if isinstance(short, str) and short.strip():
        cap.short = short.strip()
        found = True
    if isinstance(long, str) and long.strip():
        cap.long = long.strip()
        found = True
    if found and not cap.short:
        sents = split_sentences(cap.long or "")
        cap.short = sents[0] if sents else None
    return found
