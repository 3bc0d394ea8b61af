"""The s2vforge command line: one Typer app for every stage."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="s2vforge: curate raw video into subject-consistent training data and benchmark S2V models.")
recipes_app = typer.Typer(help="List and show built-in recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
err = Console(stderr=True)

EXIT_SOME_INPUTS_FAILED = 1


def _progress(total: int, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[last]}"), console=err, disable=not enabled)
    task = prog.add_task("curate", total=total, last="")
    return prog, task


ENGINE_HELP = "Scheduler: local (process pool) or ray (Ray Data; needs the ray extra: pip install 's2vforge\\[ray]')."
ADDRESS_HELP = ("Ray cluster to join: auto (the one `ray start --head` runs here), ray://HOST:PORT or HOST:PORT; "
                "unset starts a local Ray of --workers CPUs.")
SHARD_HELP = "Also write DATASET/shards/<table>/part-NNNNN.parquet of at most N rows each (0 = off)."


def _engine_spec(engine: str, address: Optional[str], workers: int, recipe: dict):
    from .engine.spec import make_spec
    return make_spec(engine, address, workers, recipe)


def run_curate(inputs: list[str], out: Path, recipe_name: Optional[str], workers: int, as_json: bool,
               quiet: bool = False, *, engine: str = "local", address: Optional[str] = None,
               shard_rows: int = 0) -> int:
    from .engine.local import run_local
    from .engine.spec import EngineError
    from .inputs import InputError, expand_inputs
    from .recipes import RecipeError, load_recipe
    from .report.html import write_report
    from .stages.curate import score_columns

    try:
        recipe = load_recipe(recipe_name)
        spec = _engine_spec(engine, address, workers, recipe)
        items = expand_inputs(inputs)
        cols = score_columns(recipe)
    except (RecipeError, InputError, ValueError) as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        return 2
    if not items:
        err.print("[red]error:[/red] no input files found in " + ", ".join(inputs))
        return 2
    prog, task = _progress(len(items), enabled=not quiet and not as_json)

    def on_progress(meta: dict) -> None:
        label = f"{meta['video_id'][:12]} {meta['status']}" + (f" ({meta['n_kept']}/{meta['n_clips']} kept)"
                                                               if meta["status"] == "ok" else "")
        prog.update(task, advance=1, last=label)

    try:
        with prog:
            summary = run_local(items, recipe, out, cols, workers=workers, on_progress=on_progress, engine=spec)
    except EngineError as e:    # Ray missing or unreachable
        err.print(f"[red]error:[/red] {escape(str(e))}")
        return 2
    if shard_rows:
        from .engine.shards import write_table_shards
        write_table_shards(out, ("videos", "clips"), shard_rows)
    write_report(out)
    if as_json:
        print(json.dumps(summary.as_dict(), indent=2, default=str))
    elif not quiet:
        err.print(f"[bold]{summary.n_inputs}[/bold] inputs: {summary.n_ok} ok, {summary.n_error} errors, "
                  f"{summary.n_duplicate} duplicates ({summary.n_skipped_done} already done); "
                  f"{summary.n_clips} clips, [green]{summary.n_kept} kept[/green] in {summary.wall_s:.1f}s")
        for name, why in summary.unavailable.items():
            err.print(f"[yellow]note:[/yellow] {name} not computed: {escape(str(why))}")
        for e in summary.errors:
            err.print(f"[red]{e['status']}:[/red] {escape(str(e['path']))}: {escape(str(e['error']))}")
        err.print(f"tables: {out / 'videos.parquet'}, {out / 'clips.parquet'}; report: {out / 'report.html'}")
    return EXIT_SOME_INPUTS_FAILED if summary.n_error else 0


@app.command()
def curate(
    inputs: list[str] = typer.Argument(..., help="Video files, folders (recursive) or manifests (.csv/.jsonl/.parquet "
                                                 "with a `path` column, optional `caption`, `group_id`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset directory to write (created; reruns resume)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="Built-in recipe name or a YAML file."),
    workers: int = typer.Option(2, "--workers", "-w", min=1, help="Worker processes (one video each)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
    address: Optional[str] = typer.Option(None, "--address", help=ADDRESS_HELP),
    shard_rows: int = typer.Option(0, "--shard-rows", min=0, help=SHARD_HELP),
):
    """Split, crop, score and filter videos into clips. Exit code 1 when some inputs failed."""
    raise typer.Exit(run_curate(inputs, out, recipe, workers, as_json, quiet, engine=engine, address=address,
                                shard_rows=shard_rows))


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Directory for the corpus and the dataset."),
    workers: int = typer.Option(2, "--workers", "-w", min=1),
    as_json: bool = typer.Option(False, "--json"),
):
    """Build a small real corpus from media that installed packages ship, and curate it."""
    from .corpus.synth import build_demo_corpus
    corpus = out / "corpus"
    err.print(f"building the demo corpus in {corpus} ...")
    build_demo_corpus(corpus)
    code = run_curate([str(corpus)], out / "dataset", None, workers, as_json)
    if not as_json:
        err.print(f"open {out / 'dataset' / 'report.html'} to see what was kept and why")
    # the demo corpus contains no broken inputs, so any error row is a real failure
    raise typer.Exit(code)


@app.command()
def subjects(
    dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="A dataset written by `curate`."),
    recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="Built-in recipe name or a YAML file "
                                                                     "(its `subjects:` section)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
    address: Optional[str] = typer.Option(None, "--address", help=ADDRESS_HELP),
    shard_rows: int = typer.Option(0, "--shard-rows", min=0, help=SHARD_HELP),
):
    """Find subjects (faces, people, objects) in kept clips: subjects.parquet + RGBA reference crops."""
    from .engine.spec import EngineError
    from .recipes import RecipeError, load_recipe
    from .report.html import write_report
    from .stages.subjects.pipeline import run_subjects
    try:
        rec = load_recipe(recipe)
        spec = _engine_spec(engine, address, workers, rec)
    except (RecipeError, ValueError) as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2)
    if not (dataset / "clips.parquet").exists():
        err.print(f"[red]error:[/red] {dataset} has no clips.parquet: run `s2vforge curate ... --out {dataset}` first")
        raise typer.Exit(2)
    import pyarrow.parquet as pq
    n_kept = sum(1 for k in pq.read_table(dataset / "clips.parquet", columns=["keep"]).column("keep").to_pylist() if k)
    prog, task = _progress(n_kept, enabled=not quiet and not as_json)
    prog.update(task, description="subjects")

    def on_progress(meta: dict) -> None:
        prog.update(task, advance=1, last=str(meta.get("clip_id", ""))[:28])

    try:
        with prog:
            summary = run_subjects(dataset, rec, workers=workers, progress=on_progress, engine=spec)
    except EngineError as e:    # Ray missing or unreachable
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2)
    if shard_rows:
        from .engine.shards import write_table_shards
        write_table_shards(dataset, ("subjects",), shard_rows)
    write_report(dataset)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    elif not quiet:
        err.print(json.dumps(summary, indent=2, default=str)[:2000])
        err.print(f"tables: {dataset / 'subjects.parquet'}; report: {dataset / 'report.html'}")


@app.command()
def report(dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="Dataset directory.")):
    """(Re)write DATASET/report.html from the tables."""
    from .report.html import write_report
    typer.echo(str(write_report(dataset)))


@recipes_app.command("list")
def recipes_list():
    """Names of the built-in recipes."""
    from .recipes import builtin_names, load_recipe
    for name in builtin_names():
        typer.echo(f"{name}\t{load_recipe(name).get('description', '')}")


@recipes_app.command("show")
def recipes_show(name: str):
    """Print a recipe (built-in name or file) as YAML, merged over the defaults."""
    import yaml
    from .recipes import RecipeError, load_recipe
    try:
        typer.echo(yaml.safe_dump(load_recipe(name), sort_keys=False))
    except RecipeError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2)


def _register_optional() -> None:
    from .stages.pairs.cli import register as register_pair
    register_pair(app)
    try:
        from .bench.opens2v.cli import register
    except ImportError:
        return
    register(app)


_register_optional()


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
