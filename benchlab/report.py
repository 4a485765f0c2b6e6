"""``REPRODUCTION.md``: each paper's reported numbers beside ours, and a computed verdict per claim.

The papers' numbers come from the plugins' paper results files (:mod:`benchlab.paper_results`,
registered through the ``register_paper_results`` hook); ours from a results database or a rendered
leaderboard's ``results.csv``, current rows only (:mod:`benchlab.lineage`). Per paper, table and
matrix block: the paper's value, ours as mean ± std over seeds with n (± std only when n > 1), the
data and scale differences the file states, and each claim's verdict (reproduced, not reproduced,
not run) computed from our means. Blocks of the ``paper`` preset without results are listed with an
estimate of their cost from the recorded durations of similar cells, else their cell count.
Nothing in the output is typed by hand: the same inputs render the same bytes.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .lineage import split_current, with_lineage
from .paper_results import Claim, Paper, Table, load_paper

PRESET = "paper"
REPRODUCED, NOT_REPRODUCED, NOT_RUN = "reproduced", "not reproduced", "not run"


@dataclass(frozen=True)
class Ours:
    """Our value of one paper cell in one block, in the paper's units."""

    mean: float | None = None
    std: float | None = None
    n: int = 0
    problem: str = ""  # why there is no value: no matching cell, ambiguous selector, metric missing


def registered_papers(pm) -> list[Paper]:
    """Every paper results file the installed plugins register, parsed and validated."""
    found: list[tuple[str, str]] = []
    for impl in reversed(pm.hook.register_paper_results.get_hookimpls()):
        impl.function(register=lambda source, plugin=impl.plugin_name: found.append((plugin, source)))
    papers = []
    for plugin, source in found:
        text = source.read_text(encoding="utf-8") if hasattr(source, "read_text") else str(source)
        papers.append(load_paper(text, origin=f"plugin {plugin!r}: {getattr(source, 'name', 'paper results')}"))
    return sorted(papers, key=lambda paper: paper.key)


def results_from_csv(directory: str | Path) -> pd.DataFrame:
    """The current rows of a rendered leaderboard (its ``results.csv``; superseded rows left out)."""
    path = Path(directory) / "results.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: --from takes a rendered leaderboard directory")
    frame = pd.read_csv(path, keep_default_na=True, dtype={"recipe": str, "version": str})
    if frame.empty:
        return frame
    if "superseded" in frame:
        frame = frame[~frame["superseded"].astype(str).str.lower().eq("true")]
    return frame.drop(columns=["superseded"], errors="ignore")


def block_members(block_cells: dict[str, set[str]], patterns) -> dict[str, set[str]]:
    """The blocks a table names (exact names or fnmatch patterns), in the preset's order."""
    return {name: cells for name, cells in block_cells.items()
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)}


def ours(frame: pd.DataFrame, cell) -> Ours:
    """Mean ± std over seeds of the rows ``cell`` selects (``frame``: one block's current rows)."""
    if frame.empty:
        return Ours(problem="no rows")
    chosen = frame[[all(cell.selector[role].fullmatch(str(spec)) for role, spec in
                        (("attack", a), ("defense", d), ("victim", v)))
                    for a, d, v in zip(frame["attack"], frame["defense"], frame["victim"])]]
    if chosen.empty:
        return Ours(problem="not run")
    combos = chosen[["dataset", "attack", "defense", "victim", "recipe"]].drop_duplicates()
    if len(combos) > 1:
        return Ours(problem=f"ambiguous: {len(combos)} cells match")
    ok = chosen[chosen["status"] == "ok"]
    if ok.empty:
        return Ours(problem=", ".join(sorted(set(chosen["status"]))))
    if cell.metric not in ok or ok[cell.metric].isna().all():
        return Ours(problem=f"no {cell.metric}")
    values = cell.offset + cell.scale * ok[cell.metric].dropna().astype(float)
    return Ours(float(values.mean()), float(values.std()) if len(values) > 1 else None, int(len(values)))


def verdict(claim: Claim, values: dict[str, Ours]) -> tuple[str, str]:
    """(verdict, what our numbers say) of one claim."""
    means = {key: values[key].mean for key in claim.cells}
    missing = [key for key, mean in means.items() if mean is None]
    if missing:
        return NOT_RUN, "missing: " + ", ".join(missing)
    if claim.kind == "order":
        ranked = sorted(claim.cells, key=lambda key: -means[key])
        held = all(means[a] >= means[b] - claim.tie if claim.tie else means[a] > means[b]
                   for a, b in zip(claim.cells, claim.cells[1:]))
        return (REPRODUCED if held else NOT_REPRODUCED), " > ".join(ranked)
    if claim.kind in ("gap", "bound"):
        value = _gap_or_value(claim, means)
        held = (claim.minimum is None or value >= claim.minimum) and (claim.maximum is None or value <= claim.maximum)
        return (REPRODUCED if held else NOT_REPRODUCED), _describe(claim, value)
    best, *others = claim.cells
    pick = min if claim.lowest else max
    winner = pick(claim.cells, key=lambda key: means[key])
    held = all((means[best] < means[o]) if claim.lowest else (means[best] > means[o]) for o in others)
    return (REPRODUCED if held else NOT_REPRODUCED), f"{'lowest' if claim.lowest else 'highest'}: {winner}"


def paper_side(claim: Claim, table: Table) -> str:
    """What the paper's own numbers give for a claim (when it reports every cell the claim reads)."""
    values = {key: table.cells[key].value for key in claim.cells}
    if any(value is None for value in values.values()):
        return "—"
    if claim.kind in ("gap", "bound"):
        return _describe(claim, _gap_or_value(claim, values))
    if claim.kind == "order":
        return " > ".join(sorted(claim.cells, key=lambda key: -values[key]))
    pick = min if claim.lowest else max
    return f"{'lowest' if claim.lowest else 'highest'}: {pick(claim.cells, key=lambda key: values[key])}"


def _gap_or_value(claim: Claim, values: dict) -> float:
    return values[claim.cells[0]] - values[claim.cells[1]] if claim.kind == "gap" else values[claim.cells[0]]


def _describe(claim: Claim, value: float) -> str:
    return f"gap {value:+.3g}" if claim.kind == "gap" else f"{value:.3g}"


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def _ours_text(value: Ours, digits: int) -> str:
    if value.mean is None:
        return value.problem
    spread = f" ± {_number(value.std, digits)}" if value.n > 1 and value.std is not None else ""
    return f"{_number(value.mean, digits)}{spread} (n={value.n})"


def _paper_text(cell, digits: int) -> str:
    if cell.value is None:
        return "—"
    spread = f" ± {cell.std:g}" if cell.std is not None else ""
    return f"{cell.value:g}{spread}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(table: Table, block: str, frame: pd.DataFrame) -> tuple[list[str], dict[str, int]]:
    """Markdown of one paper table against one block's rows, and its verdict counts."""
    values = {key: ours(frame, cell) for key, cell in table.cells.items()}
    dataset = ", ".join(sorted(set(frame["dataset"]))) if not frame.empty else "no results"
    units = f" ({table.units})" if table.units else ""
    lines = [f"#### {block} — {dataset}", "",
             f"| row | column | paper{units} | ours{units} |", "|---|---|---|---|"]
    for key, cell in table.cells.items():
        where = f" [{cell.where}]" if cell.where else ""
        lines.append(f"| {_escape(cell.row)} | {_escape(cell.column)}{_escape(where)} | "
                     f"{_paper_text(cell, table.digits)} | {_ours_text(values[key], table.digits)} |")
    counts = {REPRODUCED: 0, NOT_REPRODUCED: 0, NOT_RUN: 0}
    if table.claims:
        lines += ["", "| claim | paper | ours | verdict |", "|---|---|---|---|"]
        for claim in table.claims:
            result, detail = verdict(claim, values)
            counts[result] += 1
            lines.append(f"| {_escape(claim.text)} | {_escape(paper_side(claim, table))} | {_escape(detail)} | "
                         f"**{result}** |")
    return [*lines, ""], counts


def _by_dataset(blocks, datasets: dict[str, tuple]) -> list[list[str]]:
    """A table's blocks grouped by dataset: blocks of one dataset (e.g. one block per row of a
    paper table) are compared as one table, so claims across their rows can be checked."""
    groups: dict[tuple, list[str]] = {}
    for name in blocks:
        groups.setdefault(datasets.get(name, (name,)), []).append(name)
    return list(groups.values())


def estimate_costs(blocks: dict[str, list], durations: list[dict], registry) -> dict[str, str]:
    """Per block not run: its cells and the CPU time :mod:`benchlab.plan` estimates for them from the
    recorded durations in ``durations`` (stored rows), with how many estimates each rule gave."""
    from .plan import duration, make_plan

    unique = {cell.cell_id: cell for members in blocks.values() for cell in members}
    plan = make_plan(list(unique.values()), set(), list(durations), registry, {})  # no sizes: machine-free
    text = {}
    for name, members in blocks.items():
        costs = [plan.sequential.costs[cell.cell_id] for cell in members if cell.reason is None]
        sources = Counter(e.source for cost in costs for kind, e in cost.parts.items() if kind != "overhead")
        na = len(members) - len(costs)
        text[name] = (f"{len(members)} cells{f' ({na} n/a)' if na else ''}, "
                      f"about {duration(sum(cost.seconds for cost in costs))} CPU"
                      + (f" (estimates: {', '.join(f'{n} {s}' for s, n in sorted(sources.items()))})"
                         if sources else ""))
    return text


def render(papers: list[Paper], frame: pd.DataFrame, matrix, registry, source: str,
           durations: list[dict] = (), duration_sources: tuple[str, ...] = ()) -> str:
    """The whole ``REPRODUCTION.md``; ``durations`` (stored rows, read from ``duration_sources``) price
    the blocks not run."""
    frame = with_lineage(frame)
    cells = matrix.expand(registry)
    current, _ = split_current(frame, {cell.cell_id for cell in cells}) if not frame.empty else (frame, frame)
    block_cells = matrix.block_cells(registry)
    by_block = {name: current[current["cell"].isin(keys)] if not current.empty else current
                for name, keys in block_cells.items()}
    lines = ["# Reproduction of the papers' tables", "",
             f"Rendered by `benchlab report` from the papers' numbers that each plugin ships as data and the "
             f"results in `{source}` (current rows only). Ours: mean ± std over seeds, n = number of seeds "
             f"(± std only when n > 1). A claim is *reproduced* when our means satisfy it, *not run* when a "
             f"cell it reads has no result.", ""]
    datasets = {block["name"]: tuple(block["datasets"]) for block in matrix.blocks}
    summary = ["| paper | table | blocks | reproduced | not reproduced | not run |", "|---|---|---|---|---|---|"]
    body: list[str] = []
    for paper in papers:
        body += [f"## {paper.title}", "", paper.citation, ""]
        for table in paper.tables:
            body += [f"### {table.title}", "", f"Where in the paper: {table.where}.", "",
                     f"Paper's data: {table.paper_data}", "", f"Ours differs: {table.differences}", ""]
            blocks = block_members(block_cells, table.blocks)
            if not blocks:
                body += [f"No block of the `{PRESET}` preset matches {list(table.blocks)}.", ""]
            for group in _by_dataset(blocks, datasets):
                part = pd.concat([by_block[name] for name in group]).drop_duplicates("cell_id") \
                    if not current.empty else current
                names = ", ".join(f"`{name}`" for name in group)
                text, counts = render_table(table, names, part)
                body += text
                summary.append(f"| {paper.key} | {table.key} | {names} | {counts[REPRODUCED]} | "
                               f"{counts[NOT_REPRODUCED]} | {counts[NOT_RUN]} |")
    not_run = [name for name, part in by_block.items() if part.empty]
    lines += ["## Summary", "", *summary, ""]
    lines += body
    where = ", ".join(f"`{name}`" for name in duration_sources) or "no recorded run"
    lines += ["## Blocks not run", "",
              f"Blocks of the `{PRESET}` preset without any result here, with the CPU time `benchlab plan` "
              f"estimates for them from the durations recorded in {where} (`benchlab run --matrix {PRESET}` "
              f"runs them). Each estimate comes from cells with the same specs (*recorded*), the same plugins "
              f"with other parameters (*coarser*), the same on another dataset scaled by the measured ratio "
              f"(*other dataset*), or a fixed guess where nothing similar was recorded (*default*).", ""]
    if not not_run:
        lines += ["None.", ""]
    costs = estimate_costs({name: [cell for cell in cells if cell.logical_key in block_cells[name]]
                            for name in not_run}, durations, registry)
    for name in not_run:
        lines.append(f"- `{name}`: {costs[name]}")
    return "\n".join(lines).rstrip() + "\n"


def recorded_rows(folder: str | Path) -> list[dict]:
    """The stored rows of a run directory (its ``results.sqlite``) or of a published leaderboard."""
    from . import published
    from .store import ResultsStore

    if published.is_published(folder):
        return published.load(folder)[0]
    if Path(folder, "results.sqlite").is_file() or (Path(folder).suffix == ".sqlite" and Path(folder).is_file()):
        return ResultsStore(folder).rows()
    raise FileNotFoundError(f"{folder}: neither a run directory (results.sqlite) nor a published leaderboard "
                            f"(rows.jsonl)")


def write_report(pm, registry, *, out=None, published=None, durations_from=(), dest="REPRODUCTION.md") -> Path:
    """Render the report from a run directory (``out``) or a rendered leaderboard (``published``); blocks
    not run are priced from the durations recorded there and in ``durations_from`` (run directories
    or published leaderboards)."""
    from .matrix import load_matrix
    from .store import rows_frame

    if out is not None:
        rows = recorded_rows(out)
        frame, source = rows_frame(rows), str(out)
    else:
        from .published import is_published

        frame, source = results_from_csv(published), f"{published}/results.csv"
        rows = recorded_rows(published) if is_published(published) else []  # a results.csv alone has no durations
    durations = rows + [row for folder in durations_from for row in recorded_rows(folder)]
    text = render(registered_papers(pm), frame, load_matrix(PRESET, registry), registry, source,
                  durations, (str(out or published), *map(str, durations_from)))
    dest = Path(dest)
    dest.write_text(text, encoding="utf-8")
    return dest
