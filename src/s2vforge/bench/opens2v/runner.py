"""Run OpenS2V-Eval metrics over a folder of generated videos, resumably.

Layout of `out_dir` (<key> is the metric *instance* name: `facesim`, or `facesim_dlib` when
the dlib stand-in ran):
  raw/<key>.jsonl         one row per sample id: {"id", "status", "value", "details"?, "error"?}
  raw/<key>.meta.json     what produced the rows (class, settings); rows of other settings are never mixed in
  metrics/<key>.json      per-metric summary (status, counts, raw mean, normalised value)
  results.json            normalised metrics, total, which backend produced each metric, what is missing and why

Metrics run one after another (one model in memory at a time) and each video's row is
appended as soon as it is computed, so an interrupted run loses at most the video in
flight; a rerun skips every id that already has a final row, and retries the rows that
failed (`error`) or that the metric marked for retry (`"retry": true`: a missing judgement,
e.g. the judge endpoint was down). Metrics that cannot run here
(no weights, no endpoint, missing package) are reported with the reason, and the total is
the weighted sum of what exists, flagged partial, never silently re-weighted.
"""
from __future__ import annotations

import gc
import importlib
import inspect
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from ...backends.errors import BackendUnavailable
from ...engine.writer import write_bytes
from . import scoring
from .metrics.base import Sample, Video
from .samples import load_samples

_M = "s2vforge.bench.opens2v.metrics."
# name -> "module:Class". Imported lazily: a metric's optional dependencies only matter
# when that metric runs.
REGISTRY: dict[str, str] = {
    "aesthetic": _M + "aesthetic:AestheticScore",
    "motion_smoothness": _M + "smoothness:MotionSmoothness",
    "motion_amplitude": _M + "motion_amplitude:MotionAmplitude",
    "facesim": _M + "facesim:FaceSimCur",
    "gme": _M + "gme:GmeScore",
    "nexus": _M + "nexus:NexusScore",
    "natural": _M + "natural:NaturalScore",
    # extras: computed and stored on request, never weighted into the total
    "motion_magnitude": _M + "motion_amplitude:MotionMagnitude",
}
EXTRA_METRICS = frozenset({"motion_magnitude"})
ALIASES = {"motion": "motion_amplitude", "aes": "aesthetic", "gmescore": "gme", "nexusscore": "nexus",
           "naturalscore": "natural", "smoothness": "motion_smoothness", "amplitude": "motion_amplitude"}

ProgressFn = Callable[[dict], None]


class EvalError(ValueError):
    """The evaluation cannot start (bad domain, metric name, folder...)."""


# ----------------------------------------------------------------------------- metric registry

# Instance names of stand-in backends -> how to select them (a user reading results.json may type these).
STAND_IN_OPTIONS = {
    "facesim_dlib": "facesim -O facesim.backend=dlib",
    "gme_clip": "gme -O gme.backend=clip",
    "gme_2b": "gme -O gme.variant=2b",
    "smoothness_brisque": "motion_smoothness -O motion_smoothness.backend=brisque",
    "smoothness_vlm": "motion_smoothness -O motion_smoothness.backend=vlm",
    "nexus_owlv2": "nexus (OWLv2 is its default detector)",
    "nexus_grounding_dino": "nexus -O nexus.detector=grounding-dino",
    "nexus_clip": "nexus -O nexus.embedder=clip",
}


def resolve_metric_name(name: str) -> str:
    """Registry name of a metric or alias; EvalError listing the known names otherwise."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in REGISTRY:
        import difflib
        hint = ""
        if key in STAND_IN_OPTIONS or key.startswith("nexus_"):
            how = STAND_IN_OPTIONS.get(key, "nexus -O nexus.detector=... -O nexus.embedder=...")
            hint = f" ({key} is the name of a stand-in backend's values: select it with --metrics {how})"
        else:
            close = difflib.get_close_matches(key, list(REGISTRY) + list(ALIASES), n=1)
            if close:
                hint = f" (did you mean {ALIASES.get(close[0], close[0])}?)"
        raise EvalError(f"unknown metric {name!r}{hint}; known: {', '.join(REGISTRY)}")
    return key


def default_metrics(domain: str, version: str = "v1.1") -> list[str]:
    """The metrics that the domain's total weighs, as registry names."""
    return [resolve_metric_name(k) for k in scoring.required_metrics(domain, version)]


def load_metric_class(name: str) -> type:
    """Import `REGISTRY[name]`. If the class is named differently, take the module's class
    whose `name` attribute is the metric name (so a rename does not break the runner)."""
    target = REGISTRY[name]
    module_name, _, cls_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, cls_name, None)
    if cls is None:
        found = [obj for _, obj in inspect.getmembers(module, inspect.isclass)
                 if obj.__module__ == module.__name__ and getattr(obj, "name", None) == name
                 and callable(getattr(obj, "compute", None))]
        if len(found) != 1:
            raise ImportError(f"{module_name} defines no metric class for {name!r} (expected {cls_name})")
        cls = found[0]
    return cls


class MetricOptionsError(EvalError):
    """A metric's options are wrong (unknown key, bad value): bad input, not an unavailable backend."""


def instantiate_metric(name: str, options: Mapping[str, Any] | None = None):
    """Import and construct one metric (cheap: models load in `load()`).

    Raises BackendUnavailable when the module cannot be imported (an optional dependency is
    missing here: the other metrics still run) and MetricOptionsError when the options are wrong.
    """
    try:
        cls = load_metric_class(name)
    except ImportError as e:
        raise BackendUnavailable(f"metric {name}", [REGISTRY[name]],
                                 f"It could not be imported ({type(e).__name__}: {e}); install its optional "
                                 "dependencies (e.g. `pip install s2vforge[reference]`).") from None
    try:
        return cls(**dict(options or {}))
    except (TypeError, ValueError) as e:
        params = [p for p in inspect.signature(cls).parameters.values()
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and not p.name.endswith("_obj")]
        known = ", ".join(p.name for p in params) or "none"
        raise MetricOptionsError(f"bad options for metric {name} ({type(e).__name__}: {e}); "
                                 f"its options: {known}") from None


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str, sort_keys=True))


def metric_identity(name: str, metric) -> dict:
    """What a constructed metric is: the instance name its rows are filed under, whether its
    values are the official metric's, and the settings that decide them.

    A stand-in backend says so through its instance `name` (gme_clip, facesim_dlib,
    nexus_owlv2, ...) and `comparable = False`. `same_scale` says whether the official
    normalisation applies to its values (only then may --include-stand-ins count it).
    """
    inst = str(getattr(metric, "name", name) or name)
    comparable = bool(getattr(metric, "comparable", True)) and inst == name
    settings = metric.settings() if callable(getattr(metric, "settings", None)) else {}
    note = metric.fidelity_note() if callable(getattr(metric, "fidelity_note", None)) else None
    return {"instance_name": inst, "key": inst, "comparable": comparable,
            "same_scale": bool(getattr(metric, "same_scale", inst == name)),
            "class": f"{type(metric).__module__}:{type(metric).__qualname__}",
            "settings": _jsonable(settings), "fidelity_note": note}


def _fingerprint(ident: Mapping[str, Any]) -> dict:
    return {k: ident[k] for k in ("instance_name", "class", "comparable", "settings")}


def _settings_conflict(meta_path: Path, ident: Mapping[str, Any]) -> str | None:
    """Why the rows next to `meta_path` must not be resumed by this metric (None: they may)."""
    if not meta_path.exists():
        return None
    try:
        old = json.loads(meta_path.read_text(encoding="utf-8"))
    except ValueError:
        return f"{meta_path.name} is unreadable"
    new = _fingerprint(ident)
    if old == new:
        return None
    diff = []
    for k in ("class", "comparable"):
        if old.get(k) != new[k]:
            diff.append(f"{k} {old.get(k)!r} -> {new[k]!r}")
    o, n = old.get("settings") or {}, new["settings"]
    for k in sorted(set(o) | set(n)):
        if o.get(k) != n.get(k):
            diff.append(f"{k} {o.get(k)!r} -> {n.get(k)!r}")
    return "; ".join(diff) or "different metadata"


# ----------------------------------------------------------------------------- raw rows on disk

class RawStore:
    """Append-only JSONL of per-video rows for one metric, tolerant of a killed writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = None

    def load(self) -> tuple[dict[str, dict], bool]:
        """Rows by id (last one wins) and whether the file needs rewriting (torn or duplicate lines)."""
        rows: dict[str, dict] = {}
        dirty = False
        if not self.path.exists():
            return rows, False
        with open(self.path, "r", encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    dirty = True        # torn last line from a killed run
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    dirty = True
                    continue
                if not isinstance(row, dict) or "id" not in row:
                    dirty = True
                    continue
                if row["id"] in rows:
                    dirty = True
                rows[row["id"]] = row
        return rows, dirty

    def rewrite(self, rows: Iterable[dict]) -> None:
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        write_bytes(self.path, text.encode("utf-8"))

    def append(self, row: dict) -> None:
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n").encode("utf-8"))


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# ----------------------------------------------------------------------------- one metric

def _accepts_previous(metric) -> bool:
    fn = getattr(metric, "compute_record", None)
    if not callable(fn):
        return False
    try:
        return "previous" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _compute_row(metric, sample: Sample, previous: dict | None = None) -> dict:
    t0 = time.perf_counter()
    video = Video(sample.video_path)
    if hasattr(metric, "compute_record"):
        rec = metric.compute_record(video, sample, previous=previous) if previous is not None and \
            _accepts_previous(metric) else metric.compute_record(video, sample)
    else:
        rec = {"value": metric.compute(video, sample)}
    value = _finite(rec.get("value"))
    row: dict = {"id": sample.id, "status": "ok" if value is not None else "missing", "value": value}
    if rec.get("details"):
        row["details"] = rec["details"]
    if rec.get("value") is not None and value is None:
        row["error"] = f"non-finite value {rec.get('value')!r}"
    elif value is None and rec.get("missing"):
        row["error"] = str(rec["missing"])          # why there is no value
    if value is None and rec.get("retry"):
        row["retry"] = True                         # a rerun asks again (e.g. the judge was unreachable)
    row["elapsed_s"] = round(time.perf_counter() - t0, 4)
    return row


def _safe_row(metric, sample: Sample, previous: dict | None = None) -> dict:
    """Row for one video; BackendUnavailable propagates (the metric as a whole cannot run)."""
    try:
        return _compute_row(metric, sample, previous)
    except BackendUnavailable:
        raise
    except Exception as e:  # noqa: BLE001 - bad input is data: record it and go on
        return {"id": sample.id, "status": "error", "value": None, "error": f"{type(e).__name__}: {e}"}


def _wants_retry(metric, row: dict) -> bool:
    """A stored row to compute again: marked for retry, or one the metric says is incomplete."""
    if row.get("status") in ("error", "skipped"):
        return False
    if row.get("retry"):
        return True
    check = getattr(metric, "needs_retry", None)
    if callable(check):
        try:
            return bool(check(row))
        except Exception:  # noqa: BLE001 - a row the metric cannot read is kept as it is
            return False
    return False


def run_metric(name: str, samples: list[Sample], raw_dir: Path, options: Mapping[str, Any] | None = None,
               retry_errors: bool = True, progress: ProgressFn | None = None, *, metric=None) -> dict:
    """Compute one metric for every sample that has a video and no row yet. Returns a summary
    with the rows, whether the metric could run, and how its values may be used.

    Rows are filed under the metric's instance name. Rows already there are resumed only if
    `raw/<key>.meta.json` says they came from the same class and settings; otherwise the
    metric is reported unavailable with the difference, and nothing is mixed or deleted.
    """
    with_video = [s for s in samples if s.video_path is not None]
    total = len(with_video)
    summary: dict = {"metric": name, "status": "ok", "reason": None, "n_resumed": 0, "instance_name": name,
                     "comparable": True, "same_scale": True, "key": name, "class": REGISTRY.get(name),
                     "settings": {}, "fidelity_note": None, "rows": {}}
    if metric is None:
        try:
            metric = instantiate_metric(name, options)
        except BackendUnavailable as e:
            summary.update(status="unavailable", reason=str(e))
            return summary
    ident = metric_identity(name, metric)
    summary.update(ident)
    key = ident["key"]

    store = RawStore(raw_dir / f"{key}.jsonl")
    meta_path = raw_dir / f"{key}.meta.json"
    rows, dirty = store.load()
    conflict = _settings_conflict(meta_path, ident) if rows else None
    if conflict:
        summary.update(status="unavailable",
                       reason=f"raw/{key}.jsonl holds values computed with other settings ({conflict}); they are "
                              f"not resumed or mixed: use another --out, or delete raw/{key}.jsonl and "
                              f"raw/{key}.meta.json to recompute")
        return summary
    retry: dict[str, dict] = {}     # rows to compute again, given to the metric as `previous`
    if retry_errors:
        dropped = [k for k, r in rows.items() if r.get("status") == "error"]
        for k in dropped:
            del rows[k]
        dirty = dirty or bool(dropped)
    if dirty:
        store.rewrite(rows.values())
    if retry_errors:
        retry = {k: r for k, r in rows.items() if _wants_retry(metric, r)}
        for k in retry:
            # kept in the file until its new row is appended (a killed rerun loses nothing);
            # the file is compacted to one row per id at the end
            del rows[k]
    summary["rows"] = rows
    summary["n_resumed"] = len(rows)
    summary["n_retried"] = sum(s.id in retry for s in with_video)
    pending = [s for s in with_video if s.id not in rows]

    def tick(sample_id: str, status: str) -> None:
        if progress:
            progress({"metric": key, "id": sample_id, "status": status, "done": len(rows), "total": total})

    if progress:
        progress({"metric": key, "event": "start", "done": len(rows), "total": total})
    loaded = False
    if rows and not meta_path.exists():
        _write_json(meta_path, _fingerprint(ident))       # rows from before meta files existed: adopt them
    if pending:
        try:
            metric.load()
            loaded = True
            _write_json(meta_path, _fingerprint(ident))   # before the first new row: says what produced them
        except BackendUnavailable as e:
            summary.update(status="unavailable", reason=str(e))
        except Exception as e:  # noqa: BLE001 - a crashing loader is still just "unavailable here"
            summary.update(status="unavailable", reason=f"loading failed: {type(e).__name__}: {e}")
    try:
        if loaded:
            _run_pending(metric, pending, rows, store, tick, summary, retry)
    finally:
        store.close()
        if retry:
            _compact(store)
        close = getattr(metric, "close", None)
        if loaded and callable(close):
            close()
        del metric
        gc.collect()
    if progress:
        progress({"metric": key, "event": "end", "done": len(rows), "total": total, "status": summary["status"]})
    return summary


def _compact(store: RawStore) -> None:
    """Rewrite the rows file with one row per id (the newest), if a retried row was appended."""
    rows, dirty = store.load()
    if dirty:
        store.rewrite(rows.values())


def _run_pending(metric, pending: list[Sample], rows: dict, store: RawStore, tick, summary: dict,
                 previous: Mapping[str, dict] | None = None) -> None:
    previous = previous or {}
    todo = []
    for s in pending:
        if not metric.applies_to(s):
            row = {"id": s.id, "status": "skipped", "value": None}
            store.append(row)
            rows[s.id] = row
            tick(s.id, "skipped")
        else:
            todo.append(s)
    workers = max(1, int(getattr(metric, "concurrency", 1) or 1))
    try:
        if workers == 1:
            for s in todo:
                row = _safe_row(metric, s, previous.get(s.id))
                store.append(row)
                rows[s.id] = row
                tick(s.id, row["status"])
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            it = iter(todo)
            running: dict[Future, Sample] = {}
            for s in it:
                running[pool.submit(_safe_row, metric, s, previous.get(s.id))] = s
                if len(running) >= workers * 2:
                    break
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    s = running.pop(fut)
                    row = fut.result()          # BackendUnavailable surfaces here
                    store.append(row)
                    rows[s.id] = row
                    tick(s.id, row["status"])
                    nxt = next(it, None)
                    if nxt is not None:
                        running[pool.submit(_safe_row, metric, nxt, previous.get(nxt.id))] = nxt
    except BackendUnavailable as e:
        summary.update(status="unavailable", reason=str(e))


# ----------------------------------------------------------------------------- aggregate

def summarise_metric(name: str, rows: Mapping[str, dict], n_with_video: int) -> dict:
    """Counts, raw mean and the two normalisations of one metric's rows."""
    ok = [r for r in rows.values() if r.get("status") == "ok" and r.get("value") is not None]
    values = [float(r["value"]) for r in ok]
    out: dict = {
        "n_videos": n_with_video,
        "n_ok": len(ok),
        "n_missing": sum(r.get("status") == "missing" for r in rows.values()),
        "n_retry": sum(r.get("status") == "missing" and bool(r.get("retry")) for r in rows.values()),
        "n_skipped": sum(r.get("status") == "skipped" for r in rows.values()),
        "n_error": sum(r.get("status") == "error" for r in rows.values()),
        "n_pending": max(0, n_with_video - len(rows)),
        "raw_mean": sum(values) / len(values) if values else None,
        "normalised": None,
        "normalised_from_mean": None,
    }
    if name in scoring.RANGES and values:
        per_video = scoring.normalize_per_video({name: v} for v in values)
        out["normalised"] = per_video.get(name)
        out["normalised_from_mean"] = scoring.normalize_value(name, out["raw_mean"])
        if name == "nexus":
            nz = [v for v in values if v != 0]
            out["n_zero_dropped"] = len(values) - len(nz)
    return out


def describe_videos(samples: list[Sample], videos_dir: Path, domain: str, suggest_domain: bool = True) -> dict:
    """Which sample ids lack a video, which video files match no id (with the id they were
    probably meant for), and, when nothing matches, which domain the files belong to."""
    import difflib
    from .samples import VIDEO_EXTENSIONS, load_samples as _load
    ids = {s.id for s in samples}
    files = sorted(p for p in videos_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    unmatched = {}
    for f in files:
        if f.stem not in ids:
            close = difflib.get_close_matches(f.stem, ids, n=1, cutoff=0.8)
            unmatched[f.name] = close[0] if close else None
    other_domain = None
    if suggest_domain and files and not any(s.video_path for s in samples):
        stems = {f.stem for f in files}
        for dom in scoring.DOMAINS:
            if dom != domain and stems & {x.id for x in _load(dom)}:
                other_domain = dom
                break
    return {"missing": [s.id for s in samples if s.video_path is None], "unmatched_files": unmatched,
            "n_files": len(files), "other_domain": other_domain}


def _examples(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" ... (+{len(items) - n} more)" if len(items) > n else "")


def _missing_videos_issue(info: dict, n_samples: int, vdir: Path) -> str:
    msg = (f"{len(info['missing'])} of {n_samples} sample videos not found in {vdir} (expected <sample id>.mp4; "
           f"missing e.g. {_examples(info['missing'], 3)}; all listed in missing_videos)")
    if info["unmatched_files"]:
        named = [f"{k} (did you mean {v}?)" if v else k for k, v in info["unmatched_files"].items()]
        msg += f"; {len(named)} file(s) match no sample id: {_examples(named, 3)}"
    return msg


def _check_references(samples: list[Sample], names: list[str], bench_root) -> list[str]:
    """Reference images that FaceSim/NexusScore will need and that do not exist."""
    if not {"facesim", "nexus"} & set(names):
        return []
    return sorted({str(p) for s in samples if s.video_path is not None for p in s.ref_paths if not Path(p).is_file()})


def evaluate(domain: str, videos_dir: str | os.PathLike, bench_root: str | os.PathLike | None,
             out_dir: str | os.PathLike, version: str = "v1.1", metrics: Iterable[str] | None = None,
             metric_options: Mapping[str, Mapping[str, Any]] | None = None, *,
             eval_json: str | os.PathLike | None = None, model_name: str | None = None,
             retry_errors: bool = True, include_stand_ins: bool = False,
             progress: ProgressFn | None = None) -> dict:
    """Evaluate the videos in `videos_dir` (named `<sample id>.mp4`) on one OpenS2V-Eval domain.

    Returns the dict written to `out_dir/results.json`. Rerunning with the same `out_dir`
    resumes: finished (metric, video) pairs are read back, not recomputed. Values from a
    stand-in backend (`comparable = False`: another model, or the official model with other
    settings) are filed under their own instance name and stay out of the total, unless
    `include_stand_ins` and the stand-in keeps the official scale (`same_scale`); the results
    then list it in `stand_ins_in_total` and are not `complete`. `results["backends"]` says
    what produced every metric.

    Raises EvalError for bad input (domain, metric names or options, no video matching any id).
    """
    try:
        dom = scoring.canonical_domain(domain)
        ver = scoring.canonical_version(version)
    except scoring.ScoringError as e:
        raise EvalError(str(e)) from None
    vdir = Path(videos_dir)
    if not vdir.is_dir():
        raise EvalError(f"videos folder not found: {vdir}")
    names = default_metrics(dom, ver) if metrics is None else list(dict.fromkeys(resolve_metric_name(m) for m in metrics))
    if not names:
        raise EvalError("no metrics selected")
    options = {resolve_metric_name(k): dict(v) for k, v in (metric_options or {}).items()}
    # Construct every metric first (cheap, no model loads) so a bad option stops the run
    # before anything is computed; an import failure is only this metric's problem.
    built: dict[str, Any] = {}
    for name in names:
        try:
            built[name] = instantiate_metric(name, options.get(name))
        except BackendUnavailable:
            built[name] = None

    samples = load_samples(dom, bench_root, vdir, eval_json)
    info = describe_videos(samples, vdir, dom, suggest_domain=eval_json is None)
    missing_videos = info["missing"]
    n_with_video = len(samples) - len(missing_videos)
    if n_with_video == 0:
        msg = f"no video in {vdir} is named after a {dom}-domain sample id (expected <sample id>.mp4, e.g. " \
              f"{_examples([s.id for s in samples], 3)})"
        if info["other_domain"]:
            msg += f"; the files there are {info['other_domain']}-domain ids: use --domain {info['other_domain']}"
        elif info["unmatched_files"]:
            named = [f"{k} (did you mean {v}?)" if v else k for k, v in info["unmatched_files"].items()]
            msg += f"; found: {_examples(named, 5)}"
        else:
            msg += "; the folder holds no video file"
        raise EvalError(msg)
    missing_refs = _check_references(samples, names, bench_root)
    out = Path(out_dir)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    (out / "metrics").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    per_metric: dict[str, dict] = {}
    unavailable: dict[str, str] = {}
    notes: list[str] = []
    missing_values: dict[str, dict[str, str]] = {}
    for name in names:
        run = run_metric(name, samples, out / "raw", options.get(name), retry_errors, progress, metric=built[name])
        # a stand-in on another scale is never normalised with the official range
        scale_name = name if run["comparable"] or run["same_scale"] else run["instance_name"]
        rows = run.pop("rows")
        summary = summarise_metric(scale_name, rows, n_with_video)
        summary.update({k: run[k] for k in ("status", "reason", "n_resumed", "instance_name", "key", "comparable",
                                            "same_scale", "class", "settings", "fidelity_note")})
        summary["n_retried"] = run.get("n_retried", 0)
        gaps = {i: str(r.get("error") or "no value") + (" (retried on rerun)" if r.get("retry") else "")
                for i, r in sorted(rows.items()) if r.get("status") == "missing"}
        if gaps:
            missing_values[run["key"]] = gaps
        if run["status"] != "ok":
            unavailable[name] = run["reason"]
        elif summary["normalised"] is None and scale_name == name and name not in EXTRA_METRICS:
            summary["status"] = "no_values"
            summary["reason"] = "no video produced a value for this metric"
            if summary["n_retry"]:
                first = next(v for v in gaps.values() if v.endswith("(retried on rerun)"))
                summary["reason"] += (f" ({summary['n_retry']} missing, e.g. {first.removesuffix(' (retried on rerun)')}; "
                                      "rerun the same command to retry them)")
            unavailable[name] = summary["reason"]
        per_metric[name] = summary
        _write_json(out / "metrics" / f"{run['key']}.json", {"metric": name, "domain": dom, "version": ver, **summary})

    normalised: dict[str, float | None] = {}
    stand_ins: dict[str, dict] = {}
    stand_ins_in_total: list[str] = []
    for name, s in per_metric.items():
        if name in EXTRA_METRICS:
            continue
        usable = s["status"] == "ok" and s["n_pending"] == 0
        if s["status"] == "ok" and s["n_pending"]:
            unavailable.setdefault(name, f"{s['n_pending']} videos not computed")
        if s["comparable"]:
            normalised[name] = s["normalised"] if usable else None
            if normalised[name] is not None and s["fidelity_note"]:
                notes.append(f"{name}: {s['fidelity_note']}")
            continue
        key = s["key"]
        stand_ins[key] = {"metric": name, "instance_name": s["instance_name"], "raw_mean": s["raw_mean"],
                          "normalised": s["normalised"], "same_scale": s["same_scale"], "settings": s["settings"]}
        normalised[name] = None
        if include_stand_ins and s["same_scale"] and usable:
            normalised[name] = s["normalised"]
            stand_ins_in_total.append(name)
            notes.append(f"{name}: the stand-in {key} is counted in the total as asked (--include-stand-ins); "
                         "this total is not comparable with the leaderboard")
        elif s["status"] == "ok":
            why = ("its values are on another scale, so it is never counted, not even with --include-stand-ins"
                   if not s["same_scale"] else "not comparable with the leaderboard; --include-stand-ins counts it")
            unavailable.setdefault(name, f"computed only with a stand-in backend ({key}): {why}")
            notes.append(f"{name}: stand-in values are under stand_ins.{key} and raw/{key}.jsonl")
    for_total = scoring.metrics_for_version(normalised, ver)
    tot = scoring.partial_total(for_total, dom, ver)

    issues: list[str] = []
    if missing_videos:
        issues.append(_missing_videos_issue(info, len(samples), vdir))
    if missing_refs:
        where = f"under --bench-root {bench_root}" if bench_root else "(no --bench-root given)"
        issues.append(f"{len(missing_refs)} reference images needed by FaceSim/NexusScore are missing {where}: "
                      f"{_examples(missing_refs, 3)}")
    for name, why in unavailable.items():
        if per_metric[name]["comparable"] or per_metric[name]["status"] != "ok":
            issues.append(f"{name}: {why}")
    for name, s in per_metric.items():
        if s["n_error"]:
            issues.append(f"{name}: {s['n_error']} videos failed (see raw/{s['key']}.jsonl)")
        if s["n_retry"]:
            issues.append(f"{name}: {s['n_retry']} videos have missing values (see missing_values and "
                          f"raw/{s['key']}.jsonl); rerun the same command to retry exactly those")
        if s["n_missing"] - s["n_retry"]:
            issues.append(f"{name}: {s['n_missing'] - s['n_retry']} videos gave no value")
    not_selected = [k for k in tot["missing"] if resolve_metric_name(k) not in names]
    backends = {name: {"instance_name": s["instance_name"], "raw_file": f"raw/{s['key']}.jsonl", "class": s["class"],
                       "settings": s["settings"], "status": s["status"], "comparable": s["comparable"],
                       "same_scale": s["same_scale"],
                       "in_total": name not in EXTRA_METRICS and normalised.get(name) is not None}
                for name, s in per_metric.items()}

    results = {
        "benchmark": "opens2v-eval",
        "version": ver,
        "domain": dom,
        "model": model_name or vdir.resolve().name,
        "videos_dir": str(vdir),
        "n_samples": len(samples),
        "n_videos_found": n_with_video,
        "missing_videos": missing_videos,
        "unmatched_files": info["unmatched_files"],
        "missing_references": missing_refs,
        "missing_values": missing_values,
        "metrics": {k: for_total.get(k) for k in scoring.required_metrics(dom, ver)},
        "extra_metrics": {k: per_metric[k]["raw_mean"] for k in per_metric if k in EXTRA_METRICS},
        "backends": backends,
        "stand_ins": stand_ins,
        "stand_ins_in_total": stand_ins_in_total,
        "raw_means": {s["key"]: s["raw_mean"] for s in per_metric.values()},
        "weights": scoring.weights(dom, ver),
        "total": tot["total"],
        "total_available_weight": tot["available_weight"],
        "partial": tot["partial"],
        "missing_metrics": {k: unavailable.get(resolve_metric_name(k), "not selected (--metrics)")
                            for k in tot["missing"]},
        "not_selected": not_selected,
        "complete": (not tot["partial"]) and not missing_videos and not issues and not stand_ins_in_total,
        "issues": issues,
        "notes": notes,
        "normalisation": "per video, then averaged (official merge_result.py)",
        "wall_s": round(time.perf_counter() - t0, 3),
    }
    _write_json(out / "results.json", results)
    return results
