"""The s2vforge command line: one Typer app for every stage."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .clikit import (UsageError, fail, address_option, engine_option, err, json_option, models_option,
                     quiet_option, recipe_option, run_stage_command, shard_option, workers_option)

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="s2vforge: curate raw video into subject-consistent training data and benchmark S2V models.")
recipes_app = typer.Typer(help="List and show built-in recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")

def run_curate(inputs: list[str], out: Path, recipe_name: Optional[str], workers: int, as_json: bool,
               quiet: bool = False, *, engine: str = "local", address: Optional[str] = None,
               shard_rows: int = 0, models: Optional[Path] = None) -> int:
    """`s2vforge curate`: returns the exit code."""
    from .inputs import expand_inputs
    from .stages.curate import CurateStage, assign_ids

    def build(recipe: dict):
        stage = CurateStage(recipe)
        items = expand_inputs(inputs, exclude=[out])     # never ingest our own output
        if not items:
            raise UsageError("no input files found in " + ", ".join(map(str, inputs)))
        return stage, assign_ids(items)

    return run_stage_command("curate", out, build, recipe=recipe_name, workers=workers, engine=engine,
                             address=address, shard_rows=shard_rows, as_json=as_json, quiet=quiet, models=models)


@app.command()
def curate(
    inputs: list[str] = typer.Argument(..., help="Video files, folders (recursive) or manifests (.csv/.jsonl/.parquet "
                                                 "with a `path` column, optional `caption`, `group_id`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset directory to write (created; reruns resume)."),
    recipe: Optional[str] = recipe_option(),
    workers: int = workers_option(),
    engine: str = engine_option(),
    address: Optional[str] = address_option(),
    shard_rows: int = shard_option(),
    models: Optional[Path] = models_option(),
    as_json: bool = json_option(),
    quiet: bool = quiet_option(),
):
    """Split, crop, score and filter videos into clips. Exit code 1 when some inputs failed."""
    raise typer.Exit(run_curate(inputs, out, recipe, workers, as_json, quiet, engine=engine, address=address,
                                shard_rows=shard_rows, models=models))


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Directory for the corpus and the dataset."),
    workers: int = workers_option(),
    models: Optional[Path] = models_option(),
    as_json: bool = json_option(),
):
    """The whole chain on a small real corpus (media that installed packages ship): curate, caption
    (facts), subjects, pair, export, then a batch loaded through S2VDataset as a contact sheet."""
    from .corpus.synth import build_demo_corpus
    corpus, dataset, export_dir = out / "corpus", out / "dataset", out / "export"
    err.print(f"building the demo corpus in {escape(str(corpus))} ...")
    build_demo_corpus(corpus)
    steps = [lambda: run_curate([str(corpus)], dataset, None, workers, as_json, models=models),
             lambda: run_caption_command(dataset, None, workers, as_json=as_json, models=models),
             lambda: run_subjects_command(dataset, None, workers, as_json=as_json, models=models),
             lambda: run_pair_command(dataset, None, workers, as_json=as_json, models=models),
             lambda: run_export_command(dataset, export_dir, "samples", None, workers, as_json=as_json, models=models)]
    code = 0
    for step in steps:      # the demo corpus holds no broken inputs: any error row is a real failure
        code = step()
        if code != 0:
            raise typer.Exit(code)
    sheet = demo_batch(export_dir)
    if not as_json:
        err.print(f"a batch of {sheet['batch_size']} samples loaded through s2vforge.data.S2VDataset: frames "
                  f"{sheet['frames_shape']}, references {sheet['refs_shape']}; contact sheet "
                  f"{escape(str(sheet['path']))}")
        err.print(f"open {escape(str(dataset / 'report.html'))} to see what was kept and why, and "
                  f"{escape(str(export_dir / 'report.html'))} for the training samples; next, on the demo output:")
        for words in next_commands(dataset):
            err.print("  " + escape(shlex.join(words)), highlight=False)
    raise typer.Exit(code)


def demo_batch(export_dir: Path, batch_size: int = 4) -> dict:
    """Load a batch of the export through S2VDataset (no torch needed) and save its contact sheet
    beside the export's report, which shows it."""
    import numpy as np

    from .data import S2VDataset
    from .data.contact import save_contact_sheet
    from .report.html import write_report
    from .report.samples import CONTACT_SHEET
    ds = S2VDataset(export_dir, split=None, num_frames=8, stride=2, size=(192, 320), refs="any",
                    ref_size=(128, 128), max_refs=4)
    items = [ds[i] for i in range(min(batch_size, len(ds)))]
    path = export_dir / CONTACT_SHEET
    save_contact_sheet(items, path)
    write_report(export_dir)
    frames = np.stack([it["frames"] for it in items]) if items else np.zeros((0,))
    refs = np.stack([it["refs"] for it in items]) if items else np.zeros((0,))
    return {"batch_size": len(items), "frames_shape": list(frames.shape), "refs_shape": list(refs.shape),
            "path": path}


def next_commands(dataset: Path) -> list[list[str]]:
    """What to run after the demo (the demo prints these; the README shows them)."""
    d = str(dataset)
    exports = str(dataset.parent / "export_formats")
    return [["s2vforge", "query", d, QUERY_EXAMPLE],
            ["s2vforge", "query", d, PAIRS_QUERY],
            ["s2vforge", "export", d, "--format", "webdataset,videox-fun,opens2v", "--out", exports],
            ["s2vforge", "report", d]]


PAIRS_QUERY = "select kind, category, count(*) as n from pairs where keep group by all order by all"
QUERY_EXAMPLE = "select status, count(*) as n from videos group by 1 order by 1"


def _dataset_with(dataset: Path, table: str, command: str) -> None:
    if not (dataset / f"{table}.parquet").exists():
        raise UsageError(f"{dataset} has no {table}.parquet: run `s2vforge {command}` first")


def run_subjects_command(dataset: Path, recipe: Optional[str], workers: int, *, engine: str = "local",
                         address: Optional[str] = None, shard_rows: int = 0, as_json: bool = False,
                         quiet: bool = False, models: Optional[Path] = None) -> int:
    from .stages.subjects.pipeline import SubjectsStage, subject_items

    def build(rec: dict):
        _dataset_with(dataset, "clips", f"curate ... --out {dataset}")
        return SubjectsStage(rec), subject_items(dataset)

    return run_stage_command("subjects", dataset, build, recipe=recipe, workers=workers, engine=engine,
                             address=address, shard_rows=shard_rows, as_json=as_json, quiet=quiet, models=models)


@app.command()
def subjects(
    dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="A dataset written by `curate`."),
    recipe: Optional[str] = recipe_option(),
    workers: int = workers_option(1),
    engine: str = engine_option(),
    address: Optional[str] = address_option(),
    shard_rows: int = shard_option(),
    models: Optional[Path] = models_option(),
    as_json: bool = json_option(),
    quiet: bool = quiet_option(),
):
    """Find subjects (faces, people, objects) in kept clips: subjects.parquet + RGBA reference crops."""
    raise typer.Exit(run_subjects_command(dataset, recipe, workers, engine=engine, address=address,
                                          shard_rows=shard_rows, as_json=as_json, quiet=quiet, models=models))


def run_caption_command(dataset: Path, recipe: Optional[str], workers: int, *, captioner: Optional[str] = None,
                        endpoint: Optional[str] = None, model: Optional[str] = None, prompt: Optional[str] = None,
                        engine: str = "local", address: Optional[str] = None, shard_rows: int = 0,
                        as_json: bool = False, quiet: bool = False, models: Optional[Path] = None) -> int:
    from .stages.caption.pipeline import CaptionStage, caption_items

    def build(rec: dict):
        _dataset_with(dataset, "clips", f"curate ... --out {dataset}")
        cap = rec.setdefault("caption", {})
        if captioner:
            cap["captioners"] = [c.strip() for c in captioner.split(",") if c.strip()]
        if prompt:
            cap["prompt"] = prompt
        if endpoint or model:
            ep = dict(cap.get("endpoint") or {})
            ep.update({k: v for k, v in (("base_url", endpoint), ("model", model)) if v})
            cap["endpoint"] = ep
        return CaptionStage(rec), caption_items(dataset)

    return run_stage_command("caption", dataset, build, recipe=recipe, workers=workers, engine=engine,
                             address=address, shard_rows=shard_rows, as_json=as_json, quiet=quiet, models=models)


@app.command()
def caption(
    dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="A dataset written by `curate`."),
    captioner: Optional[str] = typer.Option(None, "--captioner", "-c",
                                            help="facts (embedded: what the pipeline measured), endpoint, reference, "
                                                 "or several comma-separated (the best-agreeing caption is kept)."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="OpenAI-compatible server base URL (…/v1) for "
                                                                   "the endpoint captioner; the key comes from "
                                                                   "caption.endpoint.api_key_env."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name the endpoint serves."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="opens2v, openhumanvid or a prompt YAML file."),
    recipe: Optional[str] = recipe_option(),
    workers: int = workers_option(1),
    engine: str = engine_option(),
    address: Optional[str] = address_option(),
    shard_rows: int = shard_option(),
    models: Optional[Path] = models_option(),
    as_json: bool = json_option(),
    quiet: bool = quiet_option(),
):
    """Caption kept clips (short / long / structured + word tags) into captions.parquet."""
    raise typer.Exit(run_caption_command(dataset, recipe, workers, captioner=captioner, endpoint=endpoint,
                                         model=model, prompt=prompt, engine=engine, address=address,
                                         shard_rows=shard_rows, as_json=as_json, quiet=quiet, models=models))


def run_pair_command(dataset: Path, recipe: Optional[str], workers: int, *, bank: Optional[list[Path]] = None,
                     engine: str = "local", address: Optional[str] = None, shard_rows: int = 0,
                     as_json: bool = False, quiet: bool = False, models: Optional[Path] = None) -> int:
    from .stages.pairs.pipeline import PairsStage, pair_items
    bank = list(bank or [])

    def build(rec: dict):
        _dataset_with(dataset, "subjects", f"subjects {dataset}")
        missing = [str(b) for b in bank if not Path(b).is_dir()]
        if missing:
            raise UsageError(f"--bank folder not found: {', '.join(missing)}")
        items, _ = pair_items(dataset)
        return PairsStage(rec, bank), items

    return run_stage_command("pair", dataset, build, recipe=recipe, workers=workers, engine=engine,
                             address=address, shard_rows=shard_rows, as_json=as_json, quiet=quiet, models=models)


@app.command()
def pair(
    dataset: Path = typer.Argument(..., exists=True, file_okay=False,
                                   help="A dataset with subjects.parquet (from `s2vforge subjects`)."),
    recipe: Optional[str] = recipe_option(),
    bank: list[Path] = typer.Option([], "--bank", "-b", help="Extra image folder to register in the retrieval "
                                                             "bank (repeatable): faces and whole images."),
    workers: int = workers_option(1),
    engine: str = engine_option(),
    address: Optional[str] = address_option(),
    shard_rows: int = shard_option(),
    models: Optional[Path] = models_option(),
    as_json: bool = json_option(),
    quiet: bool = quiet_option(),
):
    """Mine identity pairs (in-pair, cross-clip, cross-video) into pairs.parquet + a FAISS bank."""
    raise typer.Exit(run_pair_command(dataset, recipe, workers, bank=bank, engine=engine, address=address,
                                      shard_rows=shard_rows, as_json=as_json, quiet=quiet, models=models))


def parse_size(text: str) -> int:
    """`1GB`, `500MB`, `2048` (bytes) -> bytes (powers of 1024)."""
    units = {"": 1, "B": 1, "KB": 1 << 10, "K": 1 << 10, "MB": 1 << 20, "M": 1 << 20, "GB": 1 << 30, "G": 1 << 30,
             "TB": 1 << 40, "T": 1 << 40}
    t = text.strip().upper().replace("IB", "B")
    num = t.rstrip("KMGTB")
    unit = t[len(num):]
    try:
        value = float(num)
    except ValueError:
        value = -1
    if unit not in units or value <= 0:
        raise UsageError(f"--shard-size {text!r}: give a size such as 1GB, 500MB or a number of bytes")
    return int(value * units[unit])


def run_export_command(dataset: Path, out: Path, formats: str, recipe: Optional[str], workers: int, *,
                       split: Optional[str] = None, refs: Optional[str] = None, min_refs: Optional[int] = None,
                       dedup: Optional[bool] = None, shard_size: Optional[str] = None, fps: Optional[float] = None,
                       frames: Optional[int] = None, length_rule: Optional[str] = None, engine: str = "local",
                       address: Optional[str] = None, as_json: bool = False, quiet: bool = False,
                       models: Optional[Path] = None) -> int:
    from .stages.export.pipeline import ExportStage

    def build(rec: dict):
        _dataset_with(dataset, "clips", f"curate ... --out {dataset}")
        if Path(out).resolve() == Path(dataset).resolve():
            raise UsageError("--out must be a new folder, not the dataset itself")
        ex = rec.setdefault("export", {})
        if split is not None:
            from .stages.export.splits import parse_split_spec
            ex.setdefault("splits", {})["fractions"] = parse_split_spec(split)
        if refs is not None:
            ex.setdefault("refs", {})["mode"] = refs
        if min_refs is not None:
            ex.setdefault("refs", {})["min_refs"] = min_refs
        if dedup is not None:
            ex.setdefault("dedup", {})["enabled"] = dedup
        if shard_size is not None:
            ex.setdefault("webdataset", {})["shard_size"] = parse_size(shard_size)
        for key, value in (("fps", fps), ("frames", frames), ("length_rule", length_rule)):
            if value is not None:
                ex.setdefault("clip", {})[key] = value
        stage = ExportStage(rec, dataset, formats)
        return stage, stage.items()

    return run_stage_command("export", out, build, recipe=recipe, workers=workers, engine=engine, address=address,
                             shard_rows=0, as_json=as_json, quiet=quiet, models=models)


@app.command()
def export(
    dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="A dataset (curate, caption, subjects, pair)."),
    out: Path = typer.Option(..., "--out", "-o", help="Export folder to write (created; reruns resume)."),
    formats: str = typer.Option("samples", "--format", "-f",
                                help="samples (always written: samples.parquet + clips/ + subjects/, what S2VDataset "
                                     "reads), opens2v, webdataset, lance, hf, or a trainer: videox-fun, diffsynth, "
                                     "finetrainers, opensora, musubi; comma-separated for several."),
    split: Optional[str] = typer.Option(None, "--split", help="Held-out fractions, e.g. val=0.02,test=0.01 "
                                                              "(train takes the rest; drawn per source group)."),
    refs: Optional[str] = typer.Option(None, "--refs", help="self (in-clip crops), cross (cross-pair references "
                                                            "only) or both (cross when kept, else self)."),
    min_refs: Optional[int] = typer.Option(None, "--min-refs", min=0, help="Drop samples with fewer references."),
    dedup: Optional[bool] = typer.Option(None, "--dedup/--no-dedup", help="Mark near-duplicate clips (default on)."),
    shard_size: Optional[str] = typer.Option(None, "--shard-size", help="WebDataset shard size, e.g. 1GB."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Re-cut clips to this frame rate (Wan: 16)."),
    frames: Optional[int] = typer.Option(None, "--frames", min=1, help="Re-cut clips to at most this many frames "
                                                                      "(Wan: 81)."),
    length_rule: Optional[str] = typer.Option(None, "--length-rule", help="any or 4k+1 (Wan's VAE)."),
    recipe: Optional[str] = recipe_option(),
    workers: int = workers_option(),
    engine: str = engine_option(),
    address: Optional[str] = address_option(),
    models: Optional[Path] = models_option(),
    as_json: bool = json_option(),
    quiet: bool = quiet_option(),
):
    """Write training samples (clips, captions, references, splits) and the formats trainers read."""
    raise typer.Exit(run_export_command(dataset, out, formats, recipe, workers, split=split, refs=refs,
                                        min_refs=min_refs, dedup=dedup, shard_size=shard_size, fps=fps,
                                        frames=frames, length_rule=length_rule, engine=engine, address=address,
                                        as_json=as_json, quiet=quiet, models=models))


@app.command()
def report(dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="Dataset directory."),
           page_size: Optional[int] = typer.Option(None, "--page-size", min=1,
                                                   help="Clips per page of report_pages/ (the first page is in "
                                                        "report.html); default 200."),
           as_json: bool = typer.Option(False, "--json", help="Print {\"report\": PATH} as JSON on stdout.")):
    """(Re)write DATASET/report.html from the tables."""
    from .report.html import write_report
    if not any((dataset / f"{t}.parquet").exists() for t in ("clips", "subjects", "pairs")):
        raise typer.Exit(fail(f"{dataset} holds no s2vforge tables: run `s2vforge curate ... --out {dataset}` first",
                              as_json))
    try:
        path = write_report(dataset, **({"page_size": page_size} if page_size else {}))
    except (OSError, ValueError) as e:
        raise typer.Exit(fail(f"cannot write the report of {dataset}: {e}", as_json))
    typer.echo(json.dumps({"report": str(path)}) if as_json else str(path))


@app.command()
def query(dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="Dataset directory."),
          sql: str = typer.Argument(..., help="SQL over the tables, each a view named after its file: videos, "
                                             "clips, subjects, pairs..."),
          limit: int = typer.Option(50, "--limit", "-n", min=0, help="Rows to print (0 = all)."),
          as_json: bool = typer.Option(False, "--json", help="Print the rows as a JSON list of objects.")):
    """Run SQL (DuckDB) over a dataset's tables: no duckdb executable needed."""
    from .query import QueryError, jsonable, run_query
    try:
        cols, rows = run_query(dataset, sql, limit or None)
    except QueryError as e:
        raise typer.Exit(fail(str(e), as_json))
    if as_json:
        typer.echo(json.dumps([{c: jsonable(v) for c, v in zip(cols, r)} for r in rows], indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    table = Table(*cols, show_lines=False)
    for r in rows:
        table.add_row(*(escape(json.dumps(jsonable(v), ensure_ascii=False) if not isinstance(v, str) else v)
                        for v in r))
    Console(soft_wrap=True).print(table)


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
        raise typer.Exit(fail(str(e)))


def _register_bench() -> None:
    from .bench.opens2v.cli import register
    register(app)
    from .stages.export.import_opens2v import register as register_import
    register_import(app)


_register_bench()


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
