"""`s2vforge pair DATASET`: identity pairs over a dataset's subjects (stages/pairs/pipeline.py).

The main app calls `register(app)`; the command lives here so the pairs package owns its CLI.
Exit codes: 0 ok, 1 some clips failed (their error rows are in the tables), 2 bad usage or input.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

EXIT_SOME_CLIPS_FAILED = 1
EXIT_USAGE = 2


def _engine_spec(engine: str, address: Optional[str], workers: int, recipe: dict):
    """None for the local engine, else an engine.spec.EngineSpec for Ray (resources from the recipe)."""
    engine = (engine or "local").lower()
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}: local or ray")
    if engine == "local":
        if address:
            raise ValueError("--address only applies to --engine ray")
        return None
    from ...engine.spec import make_spec
    return make_spec("ray", address, workers=workers, recipe=recipe)


def run_pair_command(dataset: Path, recipe: Optional[str], banks: list[Path], workers: int, engine: str,
                     address: Optional[str], as_json: bool, quiet: bool) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from ...recipes import RecipeError, load_recipe

    err = Console(stderr=True)
    try:
        rec = load_recipe(recipe)
        spec = _engine_spec(engine, address, workers, rec)
    except (RecipeError, ValueError) as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        return EXIT_USAGE
    if not (dataset / "subjects.parquet").exists():
        err.print(f"[red]error:[/red] {dataset} has no subjects.parquet: run `s2vforge subjects {dataset}` first")
        return EXIT_USAGE
    missing = [str(b) for b in banks if not Path(b).is_dir()]
    if missing:
        err.print(f"[red]error:[/red] --bank folder not found: {', '.join(missing)}")
        return EXIT_USAGE
    import pyarrow.parquet as pq
    from ...backends.errors import BackendUnavailable
    from .pipeline import CATEGORIES, run_pairs
    t = pq.read_table(dataset / "subjects.parquet", columns=["clip_id", "category", "keep"]).to_pylist()
    n_clips = len({r["clip_id"] for r in t if r["keep"] and r["category"] in CATEGORIES})
    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[last]}"), console=err, disable=quiet or as_json)
    task = prog.add_task("pair: embed", total=n_clips, last="")

    def on_progress(meta: dict) -> None:
        prog.update(task, advance=1, last=str(meta.get("clip_id", ""))[:28])

    try:
        with prog:
            summary = run_pairs(dataset, rec, bank_dirs=[Path(b) for b in banks], workers=workers, engine=spec,
                                progress=on_progress)
    except (FileNotFoundError, ValueError) as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        return EXIT_USAGE
    except BackendUnavailable as e:   # a backend every category needs (e.g. the --bank face detector)
        err.print(f"[red]error:[/red] {escape(str(e))}")
        return EXIT_USAGE
    try:
        from ...report.html import write_report
        write_report(dataset)
    except Exception as e:   # the tables are written; a report failure must not hide that
        err.print(f"[yellow]warning:[/yellow] report.html not rewritten: {type(e).__name__}: {escape(str(e))}")
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    elif not quiet:
        kinds = ", ".join(f"{k} {v}" for k, v in summary.get("kinds", {}).items()) or "none"
        cl = summary.get("clusters") or {}
        err.print(f"[bold]{summary['n_pairs']}[/bold] pair rows from {summary['n_instances']} instances in "
                  f"{summary['n_clips']} clips ({summary['n_skipped_done']} clips already embedded): {kinds}; "
                  f"{cl.get('n_clusters', '?')} identity clusters, in {summary['wall_s']:.1f}s")
        for name, why in (summary.get("unavailable") or {}).items():
            err.print(f"[yellow]note:[/yellow] {name} unavailable: {escape(str(why))}")
        for e in summary.get("errors") or []:
            err.print(f"[red]error:[/red] {e['clip_id']}: {escape(str(e['error']))}")
        err.print(f"tables: {dataset / 'pairs.parquet'}, index: {dataset / 'index'}; report: {dataset / 'report.html'}")
    return EXIT_SOME_CLIPS_FAILED if summary.get("n_clip_errors") else 0


def register(app: typer.Typer) -> None:
    """Add the `pair` command to the main app."""

    @app.command("pair")
    def pair(
        dataset: Path = typer.Argument(..., exists=True, file_okay=False,
                                       help="A dataset with subjects.parquet (from `s2vforge subjects`)."),
        recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="Built-in recipe name or a YAML file "
                                                                         "(its `pairs:` section)."),
        bank: list[Path] = typer.Option([], "--bank", "-b", help="Extra image folder to register in the retrieval "
                                                                 "bank (repeatable): faces and whole images."),
        workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes (one clip each)."),
        engine: str = typer.Option("local", "--engine", help="local or ray."),
        address: Optional[str] = typer.Option(None, "--address", help="Ray cluster: auto or ray://HOST:PORT."),
        as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    ):
        """Mine identity pairs (in-pair, cross-clip, cross-video) into pairs.parquet + a FAISS bank."""
        raise typer.Exit(run_pair_command(dataset, recipe, list(bank), workers, engine, address, as_json, quiet))
