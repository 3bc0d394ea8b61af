"""The one pattern every stage command follows: same flags, exit codes, summary and errors.

Flags (where they apply): --recipe, --workers, --engine, --address, --shard-rows, --json,
--quiet. Exit codes: 0 all done; 1 some items failed and have error rows; 2 usage or
configuration error (printed as one escaped line, never a traceback). The summary is the
driver's (engine/driver.py::summary_of): printed as a short text on stderr, or whole as JSON
on stdout with --json.
"""
from __future__ import annotations

import json
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

err = Console(stderr=True, soft_wrap=True)    # one message = one line, also in logs

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143      # the shell's codes for SIGINT / SIGTERM

RECIPE_HELP = "Built-in recipe name (`s2vforge recipes list`) or a YAML file merged over the default."
WORKERS_HELP = "Worker processes (local engine) or CPUs of the local Ray (--engine ray without --address)."
ENGINE_HELP = "Scheduler: local (process pool) or ray (Ray Data; needs the ray extra: pip install 's2vforge\\[ray]')."
ADDRESS_HELP = ("Ray cluster to join: auto (the one `ray start --head` runs here), ray://HOST:PORT or HOST:PORT; "
                "unset starts a local Ray of --workers CPUs.")
SHARD_HELP = "Also write DATASET/shards/<table>/part-NNNNN.parquet of at most N rows each (0 = off)."
MODELS_HELP = ("Folder of reference model weights (DIR/<model name>/), for this run and its workers; "
               "the same as setting $S2VFORGE_MODELS=DIR.")


def recipe_option(default=None):
    return typer.Option(default, "--recipe", "-r", help=RECIPE_HELP)


def workers_option(default: int = 2):
    return typer.Option(default, "--workers", "-w", min=1, help=WORKERS_HELP)


def engine_option():
    return typer.Option("local", "--engine", help=ENGINE_HELP)


def address_option():
    return typer.Option(None, "--address", help=ADDRESS_HELP)


def shard_option():
    return typer.Option(0, "--shard-rows", min=0, help=SHARD_HELP)


def models_option():
    return typer.Option(None, "--models", metavar="DIR", file_okay=False, help=MODELS_HELP)


def json_option():
    return typer.Option(False, "--json", help="Print the whole run summary as JSON on stdout.")


def quiet_option():
    return typer.Option(False, "--quiet", "-q", help="No progress bar or summary.")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every engine stops its workers on the way out."""


@contextmanager
def terminate_as_interrupt():
    """While running a stage, SIGTERM raises Terminated in the main thread (the default would kill
    this process at once and leave its pool workers running)."""
    def on_term(signum, frame):
        raise Terminated()
    try:
        old = signal.signal(signal.SIGTERM, on_term)
    except ValueError:          # not the main thread (a library caller): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


class UsageError(Exception):
    """A user mistake: printed as one line, exit code 2."""


def fail(message: str, as_json: bool = False) -> int:
    # one printed line per line of the message (several unknown recipe keys), never wrapped by rich
    for line in str(message).splitlines() or [""]:
        err.print(f"[red]error:[/red] {escape(line)}", soft_wrap=True)
    if as_json:
        print(json.dumps({"error": str(message), "exit_code": EXIT_USAGE}))
    return EXIT_USAGE


def progress_bar(label: str, total: int, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[last]}"), console=err, disable=not enabled)
    task = prog.add_task(label, total=total, last="")

    def advance(meta: dict) -> None:
        key = meta.get("video_id") or meta.get("clip_id") or meta.get("key") or ""
        prog.update(task, advance=1, last=escape(f"{str(key)[:24]} {meta.get('status', '')}"))
    return prog, advance


def run_stage_command(label: str, dataset: Path, build: Callable[[dict], tuple], *, recipe: Optional[str],
                      workers: int, engine: str, address: Optional[str], shard_rows: int, as_json: bool,
                      quiet: bool, models: Optional[Path] = None) -> int:
    """Point the backends at `models` (--models DIR, also for the workers), load the recipe, build
    (stage, items) with `build(recipe)`, run it on the chosen engine, shard, rewrite the report and
    print the summary; returns the exit code."""
    from .backends.paths import set_models_dir
    if models is not None and not Path(models).expanduser().is_dir():
        return fail(f"--models {models}: no such folder (it should hold one folder of weights per model, "
                    f"DIR/<model name>/)", as_json)
    set_models_dir(models)
    from .backends.errors import BackendUnavailable
    from .engine.driver import run_stage
    from .engine.spec import EngineError, make_spec
    from .inputs import InputError
    from .recipes import RecipeError, load_recipe
    from .engine.faults import RunStopped
    try:
        rec = load_recipe(recipe)
        spec = make_spec(engine, address, workers, rec)
        stage, items = build(rec)
    except (RecipeError, EngineError, InputError, UsageError, FileNotFoundError, ValueError) as e:
        return fail(str(e), as_json)
    prog, advance = progress_bar(label, len(items), enabled=not quiet and not as_json)
    try:
        with prog, terminate_as_interrupt():
            run, summary = run_stage(stage, items, dataset, engine=spec, progress=advance)
    except (EngineError, BackendUnavailable, FileNotFoundError, RunStopped, ValueError) as e:
        # Ray missing or unreachable, a backend or setting every item needs, a full disk, a dataset
        # another run holds: nothing to blame on an item
        return fail(str(e), as_json)
    except KeyboardInterrupt as e:      # Ctrl-C or SIGTERM: the workers are stopped, the journal is whole
        code = EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
        err.print(f"[yellow]interrupted:[/yellow] finished items are kept in {escape(str(dataset))}; "
                  "run the same command again to finish")
        if as_json:
            print(json.dumps({"error": "interrupted", "exit_code": code}))
        return code
    if shard_rows:
        from .engine.shards import write_table_shards
        summary["shards"] = write_table_shards(dataset, tuple(summary["tables"]), shard_rows)
    try:
        from .report.html import write_report
        write_report(dataset)
    except Exception as e:   # the tables are written; a report failure must not hide that
        err.print(f"[yellow]warning:[/yellow] report.html not rewritten: {type(e).__name__}: {escape(str(e))}")
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    elif not quiet:
        print_summary(summary)
    return EXIT_SOME_FAILED if summary["n_error"] else EXIT_OK


def print_summary(summary: dict) -> None:
    """The same few lines for every stage: counts, the stage's own numbers, notes, errors, outputs."""
    s = summary
    err.print(f"[bold]{s['stage']}[/bold]: {s['n_items']} items: {s['n_ok']} ok, "
              + ", ".join(f"{n} {k}" for k, n in s["statuses"].items() if k != "ok")
              + ("; " if len(s["statuses"]) > 1 else "")
              + f"{s['n_skipped_done']} already done, in {s['wall_s']:.1f}s")
    own = {k: v for k, v in s.items() if k.startswith("n_") and k not in
           ("n_items", "n_ok", "n_error", "n_skipped_done") and isinstance(v, int)}
    if own:
        err.print("  " + ", ".join(f"{k[2:]} {v}" for k, v in own.items()))
    for name, why in s["unavailable"].items():
        err.print(f"[yellow]note:[/yellow] {escape(name)} not computed: {escape(str(why))}")
    for e in s["errors"][:50]:
        where = e.get("path") or e["key"]
        err.print(f"[red]{escape(str(e['status']))}:[/red] {escape(str(where))}: {escape(str(e['error']))}")
    if len(s["errors"]) > 50:
        err.print(f"... and {len(s['errors']) - 50} more (see --json or the report)")
    tables = ", ".join(str(Path(s["dataset"]) / f"{t}.parquet") for t in s["tables"])
    err.print(f"tables: {escape(tables)}; report: {escape(str(Path(s['dataset']) / 'report.html'))}")
