"""The ``benchlab`` command: run | cell | plugins | list | leaderboard | report | show."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from tabulate import tabulate

from .params import SpecError
from .plugins import KINDS, PluginError, describe_class, describe_plugins, get_plugin_manager, get_registry

DEFAULT_OUT = "runs"


class _Group(click.Group):
    """Turns the expected user errors into one clear line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (SpecError, PluginError, FileNotFoundError, ValueError) as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.version_option(package_name="benchlab")
def main(verbose: bool):
    """Which defense survives which attack, on which architecture?"""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")


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
              help="Preset (smoke, quick, paper, full) or a matrix TOML file.")
@click.option("--out", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Run directory: results database, artifact cache.")
@click.option("--seeds", type=click.IntRange(1), help="Use seeds 0..N-1 instead of the matrix's.")
@_run_options
@click.option("--executor", type=click.Choice(["local", "process", "ray"]), default="local", show_default=True)
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="Processes / Ray CPUs.")
@click.option("--threads", type=click.IntRange(1),
              help="Torch threads per cell [default: torch's choice (local), cores / workers (process), "
                   "1 (ray)]. Use 1 on a machine shared with other jobs.")
@click.option("--ray-address", help="Join this Ray cluster (default: start a local one).")
@click.option("--gpus-per-cell", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Ray GPU share per cell (0.25 packs four small cells on a GPU).")
@click.option("--retry-failed", is_flag=True, help="Run failed cells again (finished ones are always skipped).")
@click.option("--leaderboard-to", type=click.Path(file_okay=False),
              help="Where to write the leaderboard [default: leaderboards/<matrix>].")
@click.option("--dry-run", is_flag=True, help="Only list the cells that would run.")
@click.option("--metric", help="Rank every table by this declared metric [default: the block's `metric`, its "
                               "attacks' headline, else test_acc (poison) / robust_acc (evasion)].")
def run(matrix_name, out, seeds, device, data_root, download, executor, workers, threads, ray_address,
        gpus_per_cell, retry_failed, leaderboard_to, dry_run, metric):
    """Run a matrix of attack x defense x victim x dataset cells, then render its leaderboard.

    Finished cells are skipped, so a killed run resumes where it stopped.
    """
    from .cell import Settings
    from .matrix import describe, load_matrix
    from .metrics import TableMetrics
    from .runner import run_matrix
    from .store import ResultsStore

    registry = get_registry()
    matrix = load_matrix(matrix_name, registry, seeds)
    TableMetrics.from_registry(registry, forced=metric, blocks=matrix.blocks)  # a bad metric fails before the run
    if dry_run:
        cells = matrix.expand(registry)
        done = ResultsStore(out).finished_ids() if Path(out, "results.sqlite").exists() else set()
        click.echo(describe(matrix, cells))
        rows = [[c.dataset, c.threat, c.attack, c.defense, c.victim, c.seed,
                 "done" if c.cell_id in done else (f"n/a: {c.reason}" if c.reason else "todo")] for c in cells]
        click.echo(tabulate(rows, headers=["dataset", "threat", "attack", "defense", "victim", "seed", "state"]))
        return
    settings = Settings(out=str(out), device=device, data_root=data_root, download=download,
                        progress=executor == "local" and sys.stderr.isatty(), matrix=matrix.name)
    summary = run_matrix(matrix, settings, executor=executor, workers=workers, retry_failed=retry_failed,
                         ray_address=ray_address, gpus_per_cell=gpus_per_cell, threads=threads)
    click.echo(summary.line())
    dest = Path(leaderboard_to or Path("leaderboards") / matrix.name)
    _render(out, dest, matrix.name, matrix, metric)
    click.echo(f"leaderboard: {dest}/README.md")
    if summary.unfinished or summary.counts["failed"]:
        click.echo("some cells failed or did not finish: `benchlab show --out DIR --status failed --json` "
                   "has the tracebacks; rerun to resume", err=True)
        sys.exit(1)


def _render(out, dest: Path, title: str, matrix=None, metric: str | None = None, include_superseded: bool = False):
    """Render the leaderboard of ``out`` (only ``matrix``'s cells, one table per block, when given)."""
    from .leaderboard import render
    from .manifest import git_commit
    from .matrix import installed_cell_id
    from .metrics import TableMetrics
    from .store import ResultsStore, rows_frame

    registry = get_registry()
    rows = ResultsStore(out).rows()
    frame = rows_frame(rows)
    blocks = None
    if matrix is not None:
        installed = {cell.cell_id for cell in matrix.expand(registry)}
        blocks = matrix.block_cells(registry)
        if not frame.empty:
            frame = frame[frame["cell"].isin(set().union(*blocks.values()))]
    else:  # which rows the installed code would have written: those of a cell are its current rows
        installed = {installed_cell_id(registry, r["dataset"], r["attack"], r["defense"], r["victim"], r["seed"],
                                       r["params"].get("recipe") or {}) for r in rows}
    attacks = frame["attack"].unique() if not frame.empty else ()
    metrics = TableMetrics.from_registry(registry, forced=metric, blocks=matrix.blocks if matrix else (),
                                         attacks=attacks)
    render(frame, dest, title=title, blocks=blocks, metrics=metrics, installed=installed,
           include_superseded=include_superseded,
           manifest={"git_commit": git_commit(), "results": str(Path(out).resolve())})


@main.command()
@click.option("--dataset", default="digits", show_default=True)
@click.option("--attack", default="clean", show_default=True)
@click.option("--defense", default="erm", show_default=True)
@click.option("--victim", default="mlp", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--epochs", type=click.IntRange(0), help="Override the victim's number of training epochs.")
@click.option("--out", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Run directory (artifact cache); the database is not written.")
@_run_options
@click.option("--json", "as_json", is_flag=True, help="Print the row as JSON.")
def cell(dataset, attack, defense, victim, seed, epochs, out, device, data_root, download, as_json):
    """Run one cell and print its metrics."""
    from .cell import Settings, run_cell
    from .matrix import Matrix

    block = {"name": "cell", "datasets": [dataset], "attacks": [attack], "defenses": [defense],
             "victims": [victim], "seeds": [seed], "recipe": {"epochs": epochs} if epochs is not None else {},
             "budgets": {}}
    (the_cell,) = Matrix("cell", [block]).expand(get_registry())
    row = run_cell(the_cell, Settings(out=str(out), device=device, data_root=data_root, download=download,
                                      matrix="cell"))
    if as_json:
        click.echo(json.dumps(row, indent=2, sort_keys=True, default=str))
    else:
        click.echo(f"{the_cell.label()}: {row['status']}" + (f" ({row['reason']})" if row["reason"] else ""))
        click.echo(tabulate(sorted(row["metrics"].items()), headers=["metric", "value"]))
    if row["status"] == "failed":
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json):
    """List loaded plugins: distribution, version, hooks and registered names."""
    records = describe_plugins(get_plugin_manager(), get_registry())
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    rows = [[r["name"], r["distribution"], r["version"] or "", ", ".join(r["hooks"]),
             "; ".join(f"{k}: {', '.join(v)}" for k, v in r["registered"].items())] for r in records]
    click.echo(tabulate(rows, headers=["plugin", "distribution", "version", "hooks", "registered"],
                        maxcolwidths=[None, None, None, 30, 60]))


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
        raise click.ClickException(f"no {kind} match {pattern!r}; try: benchlab list {kind}")
    rows = [[r["name"], r.get("threat", r.get("framework", "")), r["plugin"],
             ", ".join(f"{p['name']}={p['default']}" for p in r["params"]), r["summary"]] for r in records]
    click.echo(tabulate(rows, headers=["name", "type", "plugin", "parameters (defaults)", "summary"],
                        maxcolwidths=[None, None, None, 40, 60]))


@main.command()
@click.option("--out", default=DEFAULT_OUT, show_default=True, type=click.Path(exists=True, file_okay=False),
              help="Run directory holding results.sqlite.")
@click.option("--to", "dest", type=click.Path(file_okay=False), help="Destination [default: leaderboards/<name>].")
@click.option("--matrix", "matrix_name", help="Only the cells of this matrix (preset or TOML).")
@click.option("--metric", help="Rank every table by this declared metric [default: the block's `metric`, its "
                               "attacks' headline, else test_acc (poison) / robust_acc (evasion)].")
@click.option("--include-superseded", is_flag=True,
              help="Also render the rows superseded by rows of newer code (they are always listed in the index).")
def leaderboard(out, dest, matrix_name, metric, include_superseded):
    """Render leaderboards (CSV, Markdown, plots) from a run directory.

    With --matrix, only that matrix's cells, one table per block of it; else one table per dataset
    and threat model over every recorded cell. Tables use, per cell, the rows of the installed code
    (else of the newest code that computed it) only.
    """
    matrix, title = None, Path(out).name
    if matrix_name:
        from .matrix import load_matrix

        matrix = load_matrix(matrix_name, get_registry())
        title = matrix.name
    dest = Path(dest or Path("leaderboards") / title)
    _render(out, dest, title, matrix, metric, include_superseded)
    click.echo(f"leaderboard: {dest}/README.md")


@main.command()
@click.option("--out", type=click.Path(exists=True, file_okay=False), help="Run directory holding results.sqlite.")
@click.option("--from", "published", type=click.Path(exists=True, file_okay=False),
              help="A rendered leaderboard directory (its results.csv) instead of a run directory.")
@click.option("--to", "dest", default="REPRODUCTION.md", show_default=True, type=click.Path(dir_okay=False))
def report(out, published, dest):
    """Render REPRODUCTION.md: each paper's reported numbers beside ours, with a verdict per claim."""
    from .report import write_report

    if bool(out) == bool(published):
        raise click.UsageError("give exactly one of --out RUN_DIR or --from LEADERBOARD_DIR")
    click.echo(f"report: {write_report(get_plugin_manager(), get_registry(), out=out, published=published, dest=dest)}")


@main.command()
@click.option("--out", default=DEFAULT_OUT, show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--status", type=click.Choice(["ok", "failed", "n/a"]), help="Only cells with this status.")
@click.option("--json", "as_json", is_flag=True, help="Full rows (metrics, manifest, tracebacks) as JSON.")
def show(out, status, as_json):
    """Show the cells recorded in a run directory."""
    from .store import ResultsStore

    rows = [r for r in ResultsStore(out).rows() if status is None or r["status"] == status]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    table = [[r["dataset"], r["attack"], r["defense"], r["victim"], r["seed"], r["status"],
              _headline(r), f"{r['duration_s']:.1f}s", r.get("code_version") or "unknown",
              (r["reason"] or "").splitlines()[0][:60] if r["reason"] else ""]
             for r in rows]
    click.echo(tabulate(table, headers=["dataset", "attack", "defense", "victim", "seed", "status", "acc",
                                        "time", "version", "reason"]))


def _headline(row: dict) -> str:
    metrics = row["metrics"]
    value = metrics.get("robust_acc", metrics.get("test_acc"))
    return "" if value is None else f"{100 * value:.1f}%"


if __name__ == "__main__":
    main()
