"""The ``benchlab`` command: run | plan | cell | plugins | list | leaderboard | report | show."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import click
from tabulate import tabulate

from .params import SpecError
from .plugins import (
    KINDS,
    STRICT_ENV,
    PluginError,
    describe_class,
    describe_plugins,
    get_plugin_manager,
    get_registry,
    reset,
)

DEFAULT_OUT = "runs"


class _Group(click.Group):
    """Turns the expected user errors into one clear line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (SpecError, PluginError, OSError, ValueError) as error:
            if (ctx.obj or {}).get("verbose"):  # -v: the traceback too
                raise
            raise click.ClickException(str(error)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.option("--strict", is_flag=True, help=f"A plugin that fails to load is an error, not left out [{STRICT_ENV}=1].")
@click.version_option(package_name="benchlab")
def main(verbose: bool, strict: bool):
    """Which defense survives which attack, on which architecture?"""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    click.get_current_context().obj = {"verbose": verbose}
    if strict:
        os.environ[STRICT_ENV] = "1"  # the environment reaches worker processes too
        reset()


def _verbose() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and (ctx.find_root().obj or {}).get("verbose"))


def _run_dir(out) -> None:
    """Create the run directory now: a bad --out is one line before any work, not a traceback after."""
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise click.ClickException(f"--out {out}: cannot create the run directory ({error.strerror})") from None


def _existing_store(out):
    """The results database of ``out``; reading commands never create one."""
    from .store import DB_NAME, ResultsStore

    if not Path(out, DB_NAME).is_file():
        raise click.ClickException(f"no results database in {out!r} ({DB_NAME} not found); "
                                   f"run `benchlab run --out {out}` first")
    return ResultsStore(out)


def _run_options(func):
    for option in reversed([
        click.option("--device", default="auto", show_default=True, help="auto (CUDA if present), cpu, cuda, cuda:N."),
        click.option("--data-root", type=click.Path(file_okay=False), help="Where torchvision datasets live."),
        click.option("--download", is_flag=True, help="Allow torchvision to download missing datasets."),
    ]):
        func = option(func)
    return func


@main.command()
@click.option("--matrix", "matrix_name", default="smoke", show_default=True,
              help="Preset (smoke, quick, paper, full, standard) or a matrix TOML file.")
@click.option("--out", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Run directory: results database, artifact cache.")
@click.option("--seeds", type=click.IntRange(1), help="Use seeds 0..N-1 instead of the matrix's.")
@_run_options
@click.option("--executor", type=click.Choice(["local", "process", "ray"]), default="local", show_default=True)
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="Processes / Ray CPUs.")
@click.option("--threads", type=click.IntRange(1),
              help="Torch threads per cell, on every executor [default: 1]; part of each cell's identity.")
@click.option("--ray-address", help="Join this Ray cluster (default: start a local one).")
@click.option("--gpus-per-cell", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Ray GPU share per cell (0.25 packs four small cells on a GPU).")
@click.option("--retry-failed", is_flag=True, help="Run failed cells again (finished ones are always skipped).")
@click.option("--cache-url", help="A second-level artifact cache behind OUT/cache at this fsspec URL (a shared "
                                  "directory, an object store): verified on read, written atomically.")
@click.option("--leaderboard-to", type=click.Path(file_okay=False),
              help="Where to write the leaderboard [default: OUT/leaderboards/<matrix>].")
@click.option("--publish", is_flag=True,
              help="Write the leaderboard (rows as data, renders, HTML page) to leaderboards/<matrix> instead.")
@click.option("--html", is_flag=True, help="Also write the browsable page index.html.")
@click.option("--adopt-from", type=click.Path(exists=True, file_okay=False), multiple=True,
              help="A published leaderboard folder: its finished cells that this matrix would compute identically "
                   "(same cell identity, code included) are recorded under --out and not run again (repeatable).")
@click.option("--dry-run", is_flag=True, help="Only list the cells that would run.")
@click.option("--metric", help="Rank every table by this declared metric [default: the block's `metric`, its "
                               "attacks' headline, else test_acc (poison) / robust_acc (evasion)].")
def run(matrix_name, out, seeds, device, data_root, download, executor, workers, threads, ray_address,
        gpus_per_cell, retry_failed, cache_url, leaderboard_to, publish, html, adopt_from, dry_run, metric):
    """Run a matrix of attack x defense x victim x dataset cells, then render its leaderboard.

    Finished cells are skipped, so a killed run resumes where it stopped.
    """
    from .cell import RETRIED_FAILURES, Settings
    from .matrix import describe, load_matrix
    from .metrics import TableMetrics
    from .runner import run_matrix
    from .store import ResultsStore
    from .validation import check_request

    if not dry_run:
        _run_dir(out)
    registry = get_registry()
    matrix = load_matrix(matrix_name, registry, seeds)
    TableMetrics.from_registry(registry, forced=metric, blocks=matrix.blocks)  # a bad metric fails before the run
    if threads is not None:  # the dry run must show the cells (identities) the run would have
        matrix.numerics = replace(matrix.numerics, threads=threads)
    for name, reason in matrix.skipped.items():
        click.echo(f"block {name} skipped: {reason}", err=True)
    if dry_run:
        cells = check_request(matrix, registry, device=device, data_root=data_root, download=download)
        done = (ResultsStore(out).finished_ids(retry_kinds=(*RETRIED_FAILURES, "unknown"))  # as run would skip
                if Path(out, "results.sqlite").exists() else set())
        adopted = {row["cell_id"] for folder in adopt_from
                   for row in _adoptable(folder, {c.cell_id for c in cells} - done)}
        click.echo(describe(matrix, cells))
        rows = [[c.dataset, c.threat, c.attack, c.defense, c.victim, c.seed,
                 "done" if c.cell_id in done else "adopted" if c.cell_id in adopted
                 else (f"n/a: {c.reason}" if c.reason else "todo")] for c in cells]
        click.echo(tabulate(rows, headers=["dataset", "threat", "attack", "defense", "victim", "seed", "state"]))
        return
    if cache_url:
        from .remote_cache import remote_cache

        remote_cache(cache_url)  # a bad URL is one line before any work
    for folder in adopt_from:
        _adopt(out, folder, matrix, registry)
    settings = Settings(out=str(out), device=device, data_root=data_root, download=download, matrix=matrix.name,
                        cache_url=cache_url)
    summary = run_matrix(matrix, settings, executor=executor, workers=workers, retry_failed=retry_failed,
                         ray_address=ray_address, gpus_per_cell=gpus_per_cell, threads=threads)
    click.echo(summary.line() + (f", {len(matrix.skipped)} blocks skipped" if matrix.skipped else ""))
    dest = Path(leaderboard_to or (Path("leaderboards") if publish else Path(out, "leaderboards")) / matrix.name)
    _render(out, dest, matrix.name, matrix, metric, html=html or publish,
            skipped=matrix.skipped)
    click.echo(f"leaderboard: {dest}/README.md")
    if summary.failed:
        click.echo(f"{summary.failed} cells failed: `benchlab show --out {out} --status failed` says why "
                   f"(--json for tracebacks). Failures of the environment or the request are retried by "
                   f"rerunning the same command once fixed; to rerun the others add --retry-failed.", err=True)
    if summary.unfinished:
        click.echo(f"{summary.unfinished} cells did not finish: rerun the same command to resume.", err=True)
    if summary.unfinished or summary.failed:
        sys.exit(1)


def _adoptable(folder, wanted: set[str]) -> list[dict]:
    """The finished rows (ok or n/a) of a published folder whose cell id is in ``wanted``. The folder
    is validated as any published folder; a row's cell id is its identity, code included."""
    from . import published

    try:
        rows, _ = published.load(folder)
    except published.PublishedError as error:
        raise click.ClickException(str(error)) from None
    return [row for row in rows if row["cell_id"] in wanted and row["status"] in ("ok", "n/a")]


def _adopt(out, folder, matrix, registry) -> None:
    """Record under ``out`` the finished cells of a published folder that ``matrix`` would compute identically."""
    from .store import ResultsStore

    store = ResultsStore(out)
    wanted = {cell.cell_id for cell in matrix.expand(registry)} - store.finished_ids(("ok", "n/a"))
    adopted = _adoptable(folder, wanted)
    for row in adopted:
        store.record(row)
    click.echo(f"{folder}: {len(adopted)} cells adopted (finished cells of this matrix, not run again)", err=True)


@main.command()
@click.option("--matrix", "matrix_name", default="smoke", show_default=True,
              help="Preset (smoke, quick, paper, full, standard) or a matrix TOML file.")
@click.option("--out", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Run directory: its recorded rows give the durations, and its finished cells are left out.")
@click.option("--seeds", type=click.IntRange(1), help="Use seeds 0..N-1 instead of the matrix's.")
@click.option("--workers", type=click.IntRange(1), multiple=True, default=(1, 2), show_default=True,
              help="Wall time for this many workers (repeatable).")
@click.option("--threads", type=click.IntRange(1), help="Torch threads per cell, as `run --threads`.")
@click.option("--data-root", type=click.Path(file_okay=False), help="Where torchvision datasets live.")
@click.option("--calibrate", is_flag=True,
              help="First run, on each dataset without recorded rows, the matrix's cheapest cells per victim "
                   "(recorded under --out: the run skips them later).")
@click.option("--device", default="auto", show_default=True, help="Device of the calibration cells.")
def plan(matrix_name, out, seeds, workers, threads, data_root, calibrate, device):
    """Estimate what a run of a matrix will cost: artifacts to build, CPU time per block, critical
    path and wall time on N workers, from the durations recorded under --out."""
    from .cell import RETRIED_FAILURES
    from .matrix import load_matrix
    from .plan import SOURCES, dataset_sizes, duration, make_plan
    from .store import DB_NAME, ResultsStore
    from .validation import check_request

    registry = get_registry()
    matrix = load_matrix(matrix_name, registry, seeds)
    if threads is not None:
        matrix.numerics = replace(matrix.numerics, threads=threads)
    for name, reason in matrix.skipped.items():
        click.echo(f"block {name} skipped: {reason}", err=True)
    cells = check_request(matrix, registry, check_data=False)
    has_db = Path(out, DB_NAME).is_file()
    if calibrate:
        from .cell import Settings, run_cell
        from .plan import calibration_cells

        _run_dir(out)
        store = ResultsStore(out)
        chosen = calibration_cells(cells, store.rows())
        click.echo(f"calibrating: {len(chosen)} cells of the matrix on {len({c.dataset for c in chosen})} "
                   f"datasets without recorded rows", err=True)
        settings = Settings(out=str(out), device=device, data_root=data_root, matrix=matrix.name)
        for cell in chosen:
            store.record(run_cell(cell, settings))
        has_db = True
    store = ResultsStore(out) if has_db else None
    rows = store.rows() if store else []
    done = store.finished_ids(retry_kinds=(*RETRIED_FAILURES, "unknown")) if store else set()
    datasets = {c.dataset for c in cells} | {r["dataset"] for r in rows}
    the_plan = make_plan(cells, done, rows, registry, dataset_sizes(sorted(datasets), registry,
                                                                    Path(data_root) if data_root else None))
    recorded = sum(r["status"] == "ok" for r in rows)
    click.echo(f"matrix {matrix.name}: {len(cells)} cells, {sum(c.reason is not None for c in cells)} n/a, "
               f"{len(cells) - len(the_plan.todo) - sum(c.reason is not None for c in cells)} done, "
               f"{len(the_plan.todo)} to run")
    click.echo(f"durations from {recorded} recorded rows in {Path(out, DB_NAME)}" if recorded else
               f"no recorded rows in {out}: every estimate is a default (run `benchlab run --matrix smoke "
               f"--out {out}` first)")
    table, total = [], {"crafts": 0, "trainings": 0, "attack runs": 0, "seconds": 0.0}
    for entry in the_plan.blocks():
        for key in total:
            total[key] += entry[key]
        table.append([entry["block"], entry["cells"], entry["n/a"], entry["done"], entry["todo"], entry["crafts"],
                      entry["trainings"], entry["attack runs"], duration(entry["seconds"]),
                      ", ".join(f"{entry['sources'][s]} {s}" for s in SOURCES if entry["sources"][s])])
    table.append(["total", len(cells), "", "", len(the_plan.todo), total["crafts"], total["trainings"],
                  total["attack runs"], duration(total["seconds"]), ""])
    click.echo(tabulate(table, headers=["block", "cells", "n/a", "done", "to run", "crafts", "trainings",
                                        "attack runs", "CPU time", "estimates (artifacts)"]))
    critical = the_plan.critical_path()
    if critical.critical:
        steps = " -> ".join(f"[{c.label()}] {duration(critical.costs[c.cell_id].seconds)}" for c in critical.critical)
        click.echo(f"\ncritical path {duration(critical.makespan)}: {steps}")
    click.echo("wall time: " + "; ".join(f"{n} worker{'s' * (n > 1)} {duration(the_plan.wall(n))}"
                                         for n in sorted(set(workers))))


def _render(out, dest: Path, title: str, matrix=None, metric: str | None = None, include_superseded: bool = False,
            html: bool = False, skipped: dict | None = None):
    """Render the leaderboard of ``out`` (only ``matrix``'s cells, one table per block, when given)
    through its data: ``dest`` gets the rows and the render's decisions (:mod:`benchlab.published`),
    then everything rendered from them."""
    from . import published
    from .manifest import git_commit
    from .matrix import installed_cell_id
    from .metrics import TableMetrics
    from .store import rows_frame

    registry = get_registry()
    rows = _existing_store(out).rows()
    frame = rows_frame(rows)
    blocks = None
    if matrix is not None:
        installed = {cell.cell_id for cell in matrix.expand(registry)}
        blocks = matrix.block_cells(registry)
        if not frame.empty:
            frame = frame[frame["cell"].isin(set().union(*blocks.values()))]
            rows = [rows[i] for i in frame.index]  # rows_frame keeps the rows' positions as its index
    else:  # which rows the installed code would have written: those of a cell are its current rows
        installed = {installed_cell_id(registry, r["dataset"], r["attack"], r["defense"], r["victim"], r["seed"],
                                       r["params"].get("recipe") or {}, _recorded_numerics(r)) for r in rows}
    attacks = frame["attack"].unique() if not frame.empty else ()
    metrics = TableMetrics.from_registry(registry, forced=metric, blocks=matrix.blocks if matrix else (),
                                         attacks=attacks)
    published.write(dest, rows, title=title, blocks=blocks, installed=installed, metrics=metrics,
                    git_commit=git_commit(), out=out, skipped=skipped)
    published.render(dest, include_superseded=include_superseded, html=html)


def _recorded_numerics(row: dict):
    """The numerics a row was computed under (its cell's identity includes them); default when unreadable."""
    from .numerics import Numerics

    try:
        return Numerics(**row["manifest"]["numerics"])
    except (KeyError, TypeError, ValueError):
        return Numerics()


@main.command()
@click.option("--dataset", default="digits", show_default=True)
@click.option("--attack", default="clean", show_default=True)
@click.option("--defense", default="erm", show_default=True)
@click.option("--victim", default="mlp", show_default=True)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0))
@click.option("--epochs", type=click.IntRange(0), help="Override the victim's number of training epochs.")
@click.option("--out", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Run directory (artifact cache); the database is not written.")
@_run_options
@click.option("--json", "as_json", is_flag=True, help="Print the row as JSON.")
def cell(dataset, attack, defense, victim, seed, epochs, out, device, data_root, download, as_json):
    """Run one cell and print its metrics."""
    from .cell import Settings, run_cell
    from .matrix import Matrix
    from .validation import check_request

    _run_dir(out)
    block = {"name": "cell", "datasets": [dataset], "attacks": [attack], "defenses": [defense],
             "victims": [victim], "seeds": [seed], "recipe": {"epochs": epochs} if epochs is not None else {},
             "budgets": {}}
    (the_cell,) = check_request(Matrix("cell", [block], source="benchlab cell"), get_registry(), device=device,
                                data_root=data_root, download=download)
    row = run_cell(the_cell, Settings(out=str(out), device=device, data_root=data_root, download=download,
                                      matrix="cell"))
    if as_json:
        click.echo(json.dumps(row, indent=2, sort_keys=True, default=str))
    else:
        reason = row["reason"] or ""
        if not _verbose():  # the traceback only with -v (or in --json)
            reason = reason.splitlines()[0] if reason else ""
        click.echo(f"{the_cell.label()}: {row['status']}" + (f" ({reason})" if reason else ""))
        click.echo(tabulate(sorted(row["metrics"].items()), headers=["metric", "value"]))
    if row["status"] == "failed":
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json):
    """List plugins: distribution, version, hooks, registered names, and any left out with the reason."""
    records = describe_plugins(get_plugin_manager(), get_registry())
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    rows = [[r["name"], r["distribution"], r["version"] or "", r["status"], ", ".join(r["hooks"]),
             "; ".join(f"{k}: {', '.join(v)}" for k, v in r["registered"].items())] for r in records]
    click.echo(tabulate(rows, headers=["plugin", "distribution", "version", "status", "hooks", "registered"],
                        maxcolwidths=[None, None, None, None, 30, 60]))
    for r in records:
        if r["status"] != "ok":
            click.echo(f"\n{r['name']} ({r['status']}): {r['reason']}\n  fix: {r['fix']}")


@main.command(name="new-plugin")
@click.argument("name")
@click.option("--kinds", default="evasion,poison,defense,victim", show_default=True,
              help="Comma-separated components to generate: evasion, poison, defense, victim.")
@click.option("--dest", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Directory to write the package benchlab-NAME into.")
def new_plugin(name, kinds, dest):
    """Write a ready plugin package (pyproject with the entry point, components, contract tests)."""
    from .scaffold import write_plugin

    root = write_plugin(name, [k.strip() for k in kinds.split(",") if k.strip()], dest)
    click.echo(f"wrote {root}: `pip install -e {root}` registers it, `pytest {root}` checks it")


@main.command(name="list")
@click.argument("kind", type=click.Choice(list(KINDS)))
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output with parameters.")
def list_(kind, pattern, as_json):
    """List registered attacks, defenses, victims or datasets (PATTERN: wildcards, e.g. 'adv-*')."""
    registry = get_registry()
    records = [describe_class(kind, registry.get(kind, n), registry.plugin_of(kind, n))
               for n in registry.names(kind, pattern)]
    if as_json:
        click.echo(json.dumps(records, indent=2, default=str))
        return
    if not records:
        left_out = "".join(f"; plugin {p} left out ({q.status})" for p, q in registry.left_out.items())
        raise click.ClickException(f"no {kind} match {pattern!r}; try: benchlab list {kind}{left_out}")
    rows = [[r["name"], r.get("threat", r.get("framework", "")), r["plugin"],
             ", ".join(f"{p['name']}={p['default']}" for p in r["params"]), r["summary"]] for r in records]
    click.echo(tabulate(rows, headers=["name", "type", "plugin", "parameters (defaults)", "summary"],
                        maxcolwidths=[None, None, None, 40, 60]))


@main.command()
@click.option("--out", type=click.Path(file_okay=False), help=f"Run directory holding results.sqlite [default: "
                                                               f"{DEFAULT_OUT}].")
@click.option("--from", "source", type=click.Path(file_okay=False),
              help="Re-render a published leaderboard folder from its data (rows.jsonl); runs and imports nothing.")
@click.option("--to", "dest", type=click.Path(file_okay=False),
              help="Destination [default: OUT/leaderboards/<name>; with --from, that folder].")
@click.option("--html", is_flag=True, help="Also write the browsable page index.html.")
@click.option("--matrix", "matrix_name", help="Only the cells of this matrix (preset or TOML).")
@click.option("--metric", help="Rank every table by this declared metric [default: the block's `metric`, its "
                               "attacks' headline, else test_acc (poison) / robust_acc (evasion)].")
@click.option("--include-superseded", is_flag=True,
              help="Also render the rows superseded by rows of newer code (they are always listed in the index).")
def leaderboard(out, source, dest, html, matrix_name, metric, include_superseded):
    """Render leaderboards (CSV, Markdown, plots) from a run directory, or from a published folder.

    With --matrix, only that matrix's cells, one table per block of it; else one table per dataset
    and threat model over every recorded cell. Tables use, per cell, the rows of the installed code
    (else of the newest code that computed it) only. With --from, the folder's own data decide all
    of this, so the same folder renders the same bytes on any machine.
    """
    if source is not None:
        from . import published

        if out or matrix_name or metric:
            raise click.UsageError("--from renders a published folder as published: it takes no --out, "
                                   "--matrix or --metric")
        where = published.render(source, dest, html=html, include_superseded=include_superseded)
        click.echo(f"leaderboard: {where}/README.md")
        return
    out = out or DEFAULT_OUT
    if not Path(out, "results.sqlite").is_file():
        raise click.ClickException(f"--out {out}: no results.sqlite there (a run directory of `benchlab run`)")
    matrix, title = None, Path(out).name
    if matrix_name:
        from .matrix import load_matrix

        matrix = load_matrix(matrix_name, get_registry())
        title = matrix.name
    dest = Path(dest or Path(out, "leaderboards") / title)
    _render(out, dest, title, matrix, metric, include_superseded, html=html,
            skipped=matrix.skipped if matrix else None)
    click.echo(f"leaderboard: {dest}/README.md")


@main.command()
@click.option("--out", type=click.Path(exists=True, file_okay=False), help="Run directory holding results.sqlite.")
@click.option("--from", "published", type=click.Path(exists=True, file_okay=False),
              help="A rendered leaderboard directory (its results.csv) instead of a run directory.")
@click.option("--durations-from", "durations_from", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Also price the blocks not run from the durations recorded in this run directory or "
                   "published leaderboard (repeatable).")
@click.option("--to", "dest", default="REPRODUCTION.md", show_default=True, type=click.Path(dir_okay=False))
def report(out, published, durations_from, dest):
    """Render REPRODUCTION.md: each paper's reported numbers beside ours, with a verdict per claim, and
    the blocks not run with their estimated cost."""
    from .report import write_report

    if bool(out) == bool(published):
        raise click.UsageError("give exactly one of --out RUN_DIR or --from LEADERBOARD_DIR")
    written = write_report(get_plugin_manager(), get_registry(), out=out, published=published,
                           durations_from=durations_from, dest=dest)
    click.echo(f"report: {written}")


@main.command()
@click.option("--out", default=DEFAULT_OUT, show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--status", type=click.Choice(["ok", "failed", "n/a"]), help="Only cells with this status.")
@click.option("--json", "as_json", is_flag=True, help="Full rows (metrics, manifest, tracebacks) as JSON.")
def show(out, status, as_json):
    """Show the cells recorded in a run directory."""
    rows = [r for r in _existing_store(out).rows() if status is None or r["status"] == status]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    table = [[r["dataset"], r["attack"], r["defense"], r["victim"], r["seed"], r["status"],
              _headline(r), f"{r['duration_s']:.1f}s", r.get("code_version") or "unknown",
              (r["reason"] or "").splitlines()[0][:60] if r["reason"] else ""]
             for r in rows]
    click.echo(tabulate(table, headers=["dataset", "attack", "defense", "victim", "seed", "status", "acc",
                                        "time", "version", "reason"]))
    failures = Counter((r["manifest"].get("failure_kind", "unknown"), (r["reason"] or "?").splitlines()[0][:120])
                       for r in rows if r["status"] == "failed")
    if failures:
        click.echo(f"\n{sum(failures.values())} failed cells, by reason:")
        for (kind, why), count in failures.most_common():
            click.echo(f"  {count} x [{kind}] {why}")


def _headline(row: dict) -> str:
    metrics = row["metrics"]
    value = metrics.get("robust_acc", metrics.get("test_acc"))
    return "" if value is None else f"{100 * value:.1f}%"


if __name__ == "__main__":
    main()
