"""`s2vforge eval` and `s2vforge leaderboard`: the OpenS2V-Eval commands.

The same conventions as the stage commands (clikit.py): --json prints the whole result on
stdout, errors are one escaped line. Exit codes: 0 all requested work done; 1 something could not be computed (a metric
unavailable here, videos missing or failing, judgements missing: a rerun retries them, a
leaderboard row that does not add up); 2 bad input (unknown domain/metric, missing folder or
file, a --judge-key-env that is not the name of a set environment variable).

Secrets: the judge key is only ever read from the environment variable named by
--judge-key-env, and it is never echoed, not even when a key was typed in its place.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

err = Console(stderr=True)

EXIT_OK, EXIT_INCOMPLETE, EXIT_BAD_INPUT = 0, 1, 2
# metrics that load a model and accept a `device` option (the other helper's modules)
_DEVICE_METRICS = ("aesthetic", "motion_smoothness", "facesim", "gme", "nexus")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """`metric.key=value` pairs -> {metric: {key: value}}; values are JSON when they parse."""
    out: dict[str, dict[str, Any]] = {}
    for n, item in enumerate(items or [], 1):
        left, eq, value = item.partition("=")
        metric, dot, key = left.partition(".")
        if not eq or not dot or not metric or not key:
            # the item is not echoed when it has no `=`: it may be a secret typed in the wrong place
            shown = f"{left!r}=..." if eq else "an item without '='"
            raise typer.BadParameter(f"--option #{n} ({shown}): expected METRIC.KEY=VALUE, "
                                     "e.g. natural.base_url=http://...")
        out.setdefault(metric.strip(), {})[key.strip()] = _parse_value(value)
    return out


def _split_metrics(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    names = [m.strip() for v in values for m in v.split(",") if m.strip()]
    return names or None


def _make_progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    prog = Progress(TextColumn("[bold]{task.description:<18}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[last]}"), console=err, disable=not enabled)
    tasks: dict[str, Any] = {}

    def on_event(ev: dict) -> None:
        name = ev["metric"]
        if name not in tasks:
            tasks[name] = prog.add_task(name, total=ev.get("total") or 0, completed=ev.get("done", 0), last="")
        tid = tasks[name]
        if ev.get("event") == "end":
            prog.update(tid, completed=ev["done"], last=ev.get("status", ""))
        elif ev.get("event") != "start":
            prog.update(tid, completed=ev["done"], last=f"{ev['id']} {ev['status']}")
    return prog, on_event


def _print_summary(res: dict) -> None:
    from rich.table import Table
    t = Table(title=f"OpenS2V-Eval {res['version']} {res['domain']} domain: {res['model']}")
    t.add_column("metric")
    t.add_column("weight", justify="right")
    t.add_column("score", justify="right")
    t.add_column("raw mean", justify="right")
    t.add_column("backend")
    backends = res.get("backends", {})
    for k, w in res["weights"].items():
        v = res["metrics"].get(k)
        b = backends.get("motion_amplitude" if k == "motion" else k)
        raw = None if b is None else res["raw_means"].get(b["instance_name"])
        if b is None:
            label = ""
        elif b["comparable"]:
            label = b["instance_name"]
        else:
            label = f"{b['instance_name']} (stand-in{', counted' if b['in_total'] else ''})"
        t.add_row(k, f"{w:.2f}", "–" if v is None else f"{v * 100:.2f}%", "" if raw is None else f"{raw:.4g}", label)
    total = f"{res['total'] * 100:.2f}%"
    if res["partial"]:
        total += f" (partial: weight {res['total_available_weight']:g} of 1)"
    t.add_row("[bold]total[/bold]", "1.00", f"[bold]{total}[/bold]", "")
    err.print(t)
    for k, why in res["missing_metrics"].items():
        err.print(f"[yellow]missing[/yellow] {escape(str(k))}: {escape(str(why))}")
    for key, si in res.get("stand_ins", {}).items():
        norm = "" if si["normalised"] is None else f", normalised {si['normalised'] * 100:.2f}%"
        raw = "–" if si["raw_mean"] is None else f"{si['raw_mean']:.4g}"
        err.print(f"[cyan]stand-in[/cyan] {key}: raw mean {raw}{norm}")
    for issue in res["issues"]:
        if not any(issue.startswith(f"{k}:") for k in res["missing_metrics"]):
            err.print(f"[yellow]issue:[/yellow] {escape(str(issue))}")
    for note in res.get("notes", []):
        err.print(f"[cyan]note:[/cyan] {escape(str(note))}")


def eval_command(
    benchmark: str = typer.Option("opens2v", "--benchmark", "-b", help="Benchmark to run (only opens2v)."),
    domain: str = typer.Option(..., "--domain", "-d", help="open | human | single"),
    videos: Path = typer.Option(..., "--videos", help="Folder of generated videos named <sample id>.mp4."),
    bench_root: Optional[Path] = typer.Option(None, "--bench-root", help="OpenS2V-Eval folder holding Images/ "
                                              "(reference images; needed by FaceSim, NexusScore)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (reruns resume)."),
    version: str = typer.Option("v1.1", "--version", help="v1.1 | v1.0 (weights and columns)."),
    metrics: Optional[list[str]] = typer.Option(None, "--metrics", "-m", help="Metrics to run (repeat or comma-"
                                                "separate): aesthetic, motion_smoothness, motion_amplitude, facesim, "
                                                "gme, nexus, natural, motion_magnitude; default: every metric the "
                                                "domain weighs."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-O", help="Metric option METRIC.KEY=VALUE, "
                                               "e.g. facesim.backend=dlib, natural.base_url=http://localhost:8000/v1,"
                                               " aesthetic.clip_dir=..."),
    eval_json: Optional[Path] = typer.Option(None, "--eval-json", help="Prompt file to use instead of the packaged one."),
    model_name: Optional[str] = typer.Option(None, "--name", help="Model name in results/leaderboards (default: "
                                             "the videos folder name)."),
    device: Optional[str] = typer.Option(None, "--device", help="Device for model-backed metrics (cpu, cuda, cuda:1)."),
    judge_url: Optional[str] = typer.Option(None, "--judge-url", help="OpenAI-compatible base URL for NaturalScore."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="Judge model name for NaturalScore."),
    judge_key_env: Optional[str] = typer.Option(None, "--judge-key-env", help="NAME of the environment variable "
                                                "holding the judge API key (default OPENAI_API_KEY); never the "
                                                "key itself."),
    models: Optional[Path] = typer.Option(None, "--models", help="Folder holding reference model weights "
                                          "(sets $S2VFORGE_MODELS)."),
    include_stand_ins: bool = typer.Option(False, "--include-stand-ins", help="Also count stand-in backends on the "
                                           "official scale (e.g. nexus_owlv2, gme_2b, smoothness_vlm) in the total; "
                                           "the results then list them and are not comparable with the leaderboard."),
    as_json: bool = typer.Option(False, "--json", help="Print results.json on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summary."),
):
    """Score generated videos on OpenS2V-Eval: per-video raw values, normalised metrics and the total.

    Reruns with the same --out resume, and retry what is missing (e.g. judgements the
    endpoint did not give); the exit code is 1 while anything is missing."""
    from ...backends.paths import set_models_dir
    if models is not None:
        if not Path(models).expanduser().is_dir():
            err.print(f"[red]error:[/red] --models folder not found: {escape(str(models))}")
            raise typer.Exit(EXIT_BAD_INPUT)
        set_models_dir(models)          # before any metric module or model loads
    from .runner import EvalError, evaluate
    from .samples import SamplesError
    from .scoring import ScoringError

    if benchmark.lower().replace("-", "") not in ("opens2v", "opens2veval"):
        err.print(f"[red]error:[/red] unknown benchmark {escape(repr(benchmark))}; available: opens2v")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        opts = parse_options(option)
    except typer.BadParameter as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(EXIT_BAD_INPUT)
    judge = {"base_url": judge_url, "model": judge_model, "api_key_env": judge_key_env}
    for k, v in judge.items():
        if v is not None:
            opts.setdefault("natural", {}).setdefault(k, v)
    for flag, value in (("--judge-key-env", judge_key_env),
                        ("-O natural.api_key_env", opts.get("natural", {}).get("api_key_env"))):
        problem = _key_env_problem(value)
        if problem:
            err.print(f"[red]error:[/red] {flag} {escape(problem)}")
            raise typer.Exit(EXIT_BAD_INPUT)
    if device:
        for m in _DEVICE_METRICS:
            opts.setdefault(m, {}).setdefault("device", device)
    prog, on_event = _make_progress(enabled=not (as_json or quiet))
    try:
        with prog:
            res = evaluate(domain, videos, bench_root, out, version=version, metrics=_split_metrics(metrics),
                           metric_options=opts, eval_json=eval_json, model_name=model_name,
                           include_stand_ins=include_stand_ins, progress=on_event)
    except (EvalError, SamplesError, ScoringError) as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(EXIT_BAD_INPUT)
    if as_json:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
    elif not quiet:
        _print_summary(res)
        err.print(escape(f"results: {Path(out) / 'results.json'}; per-video values: {Path(out) / 'raw'}"))
    raise typer.Exit(EXIT_INCOMPLETE if res["issues"] else EXIT_OK)


def _key_env_problem(value: Any) -> str | None:
    """Why `value` cannot be the key's variable name (None: it can). Never includes the value."""
    from ...backends.judge import KEY_ENV_HELP, is_env_name
    if value is None:
        return None
    if not is_env_name(value):
        return f"{KEY_ENV_HELP}; the value given is not a valid variable name (it is not shown)"
    if not os.environ.get(value):
        return (f"{KEY_ENV_HELP}; the value given names no variable set in this environment (it is not "
                "shown): export the key in a variable, e.g. `export MY_JUDGE_KEY=...`, and pass that name")
    return None


def leaderboard_command(
    items: list[str] = typer.Argument(..., help="RESULTS... (results.json files or eval folders), "
                                                "or `verify CSV` to check a published table."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Table to write: .md, .csv or .html."),
    version: str = typer.Option("v1.1", "--version", help="verify: v1.1 | v1.0"),
    domain: str = typer.Option("open", "--domain", "-d", help="verify: open | human | single"),
    tol: float = typer.Option(0.015, "--tol", help="verify: tolerance in percentage points."),
    as_json: bool = typer.Option(False, "--json", help="Print rows as JSON on stdout."),
):
    """Rank results into a table (published column order), or `verify CSV` a published one."""
    from .leaderboard import LeaderboardError, build_rows, check, load_results, render_markdown, write_leaderboard
    from .scoring import ScoringError

    try:
        if items[0] == "verify":
            if len(items) != 2:
                err.print("[red]error:[/red] usage: s2vforge leaderboard verify CSV [--version v1.1] [--domain open]")
                raise typer.Exit(EXIT_BAD_INPUT)
            report = check(items[1], version, domain, tol)
            bad = [r for r in report if not r["ok"]]
            if as_json:
                sys.stdout.write(json.dumps({"csv": items[1], "version": version, "domain": domain, "tolerance": tol,
                                             "n_rows": len(report), "disagree": bad}, indent=2) + "\n")
            else:
                from rich.table import Table
                t = Table(title=f"{items[1]} ({version}, {domain})")
                for c in ("model", "published", "recomputed", "swapped reading", "verdict"):
                    t.add_column(c, justify="left" if c in ("model", "verdict") else "right")
                for r in report:
                    mark = "[green]ok[/green]" if r["ok"] else f"[red]{r['diagnosis']}[/red]"
                    t.add_row(r["model"], _fmt(r["published_total"]), _fmt(r["faithful_total"]),
                              _fmt(r["swapped_total"]), mark)
                err.print(t)
                err.print(f"{len(report) - len(bad)}/{len(report)} rows add up within {tol} points")
            raise typer.Exit(EXIT_INCOMPLETE if bad else EXIT_OK)
        results = load_results(items)
        if out is not None:
            path = write_leaderboard(results, out)
            if not as_json:
                err.print(f"wrote {path}")
        rows, ver, dom = build_rows(results)
        if as_json:
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        elif out is None:
            sys.stdout.write(render_markdown(rows, ver, dom))
    except (LeaderboardError, ScoringError, FileNotFoundError) as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(EXIT_BAD_INPUT)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def register(app: typer.Typer) -> None:
    """Add `eval` and `leaderboard` to the main s2vforge app."""
    app.command("eval")(eval_command)
    app.command("leaderboard")(leaderboard_command)


def make_app() -> typer.Typer:
    """A stand-alone app with just these commands (tests, `python -m`)."""
    app = typer.Typer(add_completion=False, no_args_is_help=True)
    register(app)
    return app


if __name__ == "__main__":
    make_app()()
