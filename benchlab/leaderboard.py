"""Leaderboards: results rows -> per dataset and threat model tables (CSV, Markdown) and plots.

Rows are defense × victim, columns are attacks, cells are mean ± std over seeds of the table's
metric (:class:`benchlab.metrics.TableMetrics`: ``--metric``, the block's ``metric``, its attacks'
declared headline, else clean test accuracy for poisoning and robust accuracy for evasion; beside
any other metric, clean accuracy). Rows are ranked by their worst case over attacks in the metric's
declared direction, as RobustBench ranks by AutoAttack (ties broken by the mean over attacks, then by
clean accuracy), but a row evaluated under fewer attacks
(the others n/a for it, e.g. gradient attacks on a random forest) ranks below every row evaluated
under more: escaping an attack by being incompatible with it is not surviving it. Given the matrix,
there is one table per block (a designed experiment with one attack set), else one per dataset and
threat model (and recipe, when several were run). Tables use the current rows of each logical cell
only (:mod:`benchlab.lineage`): superseded rows are listed in the index and rendered on request.
``results.csv`` keeps every metric of every cell (results as data) with its code ``version`` and a
``superseded`` flag; ``manifest.json`` says what produced them and lists each table's cells. Rendering
is deterministic (no clock, fixed plot style and metadata): the same rows render the same bytes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from .cache import cache_key, file_sha256
from .lineage import UNKNOWN, layers, split_current, superseded_table, with_lineage
from .metrics import DEFAULT as HEADLINE
from .metrics import TableMetrics
from .params import parse_spec
from .reliability import BLACK_BOX_MARK, FLAGS

WORST = "worst case"
COVERAGE = "attacks"
VERSION = "version"
CLEAN = "clean acc"
# A black-box attack must beat the best white-box attack of its row by more than this to be flagged.
BLACK_BOX_MARGIN = 0.01


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def table(frame: pd.DataFrame, metric: str, higher_is_better: bool = True) -> pd.DataFrame:
    """Mean ± std over seeds of ``metric``; index (defense, victim), one column per attack; ranked by
    the worst case over attacks (the lowest, or the highest when lower is better), equal worst cases
    by the mean over attacks, then by clean accuracy (``test_acc``). ``attrs``: ``std``, ``n`` (seeds
    per cell), ``na``."""
    ok = frame[frame["status"] == "ok"]
    if ok.empty or metric not in ok or ok[metric].isna().all():
        return pd.DataFrame()
    if VERSION in ok:  # seeds of one code identity only (benchlab.lineage selects them)
        mixed = ok.groupby(["defense", "victim", "attack"])[VERSION].nunique()
        if (mixed > 1).any():
            raise ValueError(f"rows of different code versions for {list(mixed[mixed > 1].index)[:3]}: "
                             f"select the current rows first (benchlab.lineage.split_current)")
    grouped = ok.groupby(["defense", "victim", "attack"])[metric].agg(["mean", "std", "count"])
    mean = grouped["mean"].unstack("attack")
    std = grouped["std"].unstack("attack").fillna(0.0)
    mean.columns.name = std.columns.name = None
    # Attack columns keep the order the matrix listed them in (first appearance).
    order = list(dict.fromkeys(a for a in frame["attack"] if a in mean.columns))
    mean, std = mean[order], std[order]
    result = mean.copy()
    result[WORST] = mean.min(axis=1) if higher_is_better else mean.max(axis=1)
    result[COVERAGE] = mean.notna().sum(axis=1)
    ranking = pd.DataFrame({"coverage": result[COVERAGE], "worst": result[WORST], "mean": mean.mean(axis=1),
                            "clean": _clean_mean(ok).reindex(result.index)})
    ranking = ranking.sort_values(["coverage", "worst", "mean", "clean"], kind="stable", na_position="last",
                                  ascending=[False, not higher_is_better, not higher_is_better, False])
    result = result.loc[ranking.index]
    result.attrs["std"] = std.reindex(result.index)
    result.attrs["n"] = grouped["count"]
    na = frame[frame["status"] == "n/a"]
    result.attrs["na"] = set(zip(na["defense"], na["victim"], na["attack"]))
    result.attrs["marks"] = reliability_marks(ok, mean) if metric == "robust_acc" else {}
    return result


def _clean_mean(ok: pd.DataFrame) -> pd.Series:
    """Per (defense, victim): mean clean test accuracy over its finished cells (NaN where not recorded)."""
    if "test_acc" not in ok:
        return pd.Series(dtype=float)
    return pd.to_numeric(ok["test_acc"], errors="coerce").groupby([ok["defense"], ok["victim"]]).mean()


def seeds_label(result: pd.DataFrame) -> str:
    """How many seeds each cell averages: "n = 1" (no spread to show), else "mean ± std over n = 3 seeds"."""
    counts = sorted({int(c) for c in result.attrs.get("n", pd.Series(dtype=int))} or {1})
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return "n = 1" if counts == [1] else f"mean ± std over n = {n} seeds"


def _formatted(result: pd.DataFrame, raw: set[str] = frozenset()) -> pd.DataFrame:
    """Percentages with ± std, ``n/a`` for incompatible cells; ``raw`` columns are not fractions."""
    std = result.attrs.get("std", pd.DataFrame())
    na = result.attrs.get("na", set())
    marks = result.attrs.get("marks", {})
    out = pd.DataFrame(index=result.index)
    for column in result.columns:
        values = []
        if column == COVERAGE:
            out[column] = result[column].astype(int)
            continue
        if column == VERSION:
            out[column] = result[column]
            continue
        scale, digits = (1, 3) if column in raw else (100, 1)
        for key, mean in result[column].items():
            spread = std[column].get(key) if column in std else None
            if pd.isna(mean):  # incompatible (n/a) vs. not part of the matrix (blank)
                values.append("n/a" if (*key, column) in na else "")
            else:
                if spread:
                    text = (f"{scale * mean:.{digits}g} ± {scale * spread:.{digits}g}" if scale == 1
                            else f"{scale * mean:.{digits}f} ± {scale * spread:.{digits}f}")
                else:
                    text = f"{scale * mean:.{digits}g}" if scale == 1 else f"{scale * mean:.{digits}f}"
                mark = marks.get((*key, column))
                values.append(f"{text} [{','.join(mark)}]" if mark else text)
        out[column] = values
    out.insert(0, "rank", range(1, len(out) + 1))
    return out


def _sections(frame: pd.DataFrame, blocks: dict[str, set[str]] | None):
    """(heading prefix, file prefix, rows, block name) per block when the blocks' cells are known, else
    one. A block's cells are cell ids or logical cells (``benchlab.lineage.logical_key``): rows of
    other code than the block's current cells still find their block by the latter."""
    if frame.empty:
        return
    if not blocks or len(blocks) == 1:  # one block: its name would only lengthen the file names
        yield "", "", frame, next(iter(blocks)) if blocks else None
        return
    for name, cells in blocks.items():
        part = frame[frame["cell_id"].isin(cells) | frame["cell"].isin(cells)]
        if not part.empty:
            yield f"{name}: ", f"{_slug(name)}-", part, name


def render(frame: pd.DataFrame, dest: str | Path, *, title: str = "benchlab", manifest: dict | None = None,
           plots: bool = True, blocks: dict[str, set[str]] | None = None, metrics: TableMetrics | None = None,
           installed: set[str] | None = None, include_superseded: bool = False,
           skipped: dict[str, str] | None = None) -> list[Path]:
    """Write tables, plots, ``results.csv`` and ``manifest.json`` into ``dest``; return the paths.

    ``blocks`` maps block names to their cells (``Matrix.block_cells``): one table per block,
    dataset and threat model. A cell shared by two blocks appears in both. ``metrics`` chooses each
    table's metric; ``installed`` are the cell ids of the installed code (``benchlab.lineage``);
    ``include_superseded`` also renders the superseded rows, one generation at a time. ``skipped``
    maps the blocks that did not run (a plugin they need is missing) to the reason, listed in the index.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    metrics = metrics or TableMetrics()
    frame = with_lineage(frame)
    current, superseded = split_current(frame, installed)
    written: list[Path] = []
    tables: list[dict] = []  # what each table shows, for pages built from the rendered files
    index_lines = [f"# {title}", "", *_coverage_lines(current, blocks, title)]
    if frame.empty:
        index_lines.append("No results yet.")
    for heading, prefix, section, block in _sections(current, blocks):
        written += _render_section(section, dest, heading, prefix, index_lines, plots, metrics, block, tables)
    if not superseded.empty:
        index_lines += _superseded_lines(superseded, current, include_superseded)
    if include_superseded:
        for number, generation in enumerate(layers(superseded), 1):
            for heading, prefix, section, block in _sections(generation, blocks):
                written += _render_section(section, dest, f"superseded {number}: {heading}",
                                           f"superseded-{number}-{prefix}", index_lines, plots, metrics, block,
                                           tables)
    if skipped:
        index_lines += ["## Skipped blocks", "", *(f"- `{name}`: {reason}" for name, reason in skipped.items()), ""]
    results_csv = dest / "results.csv"
    if not frame.empty:
        frame = frame.assign(superseded=frame.index.isin(superseded.index))
    frame.drop(columns=["reason"], errors="ignore").to_csv(results_csv, index=False)
    (dest / "README.md").write_text("\n".join(index_lines) + "\n")
    written += [results_csv, dest / "README.md"]
    _remove_stale(dest, {p.name for p in written})
    info = {"title": title, "cells": int(len(current)), "superseded": int(len(superseded)),
            "files": sorted(p.name for p in written), "tables": tables,
            "skipped_blocks": skipped or {}, "file_sha256": {p.name: file_sha256(p) for p in written},
            **(manifest or {})}
    (dest / "manifest.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
    return [*written, dest / "manifest.json"]


def _coverage_lines(current: pd.DataFrame, blocks: dict[str, set[str]] | None, matrix: str) -> list[str]:
    """A line per block with cells not recorded yet: the tables of a partial run average what is there."""
    recorded = set(current["cell"]) if not current.empty else set()
    lines = [f"- `{name}`: {len(cells & recorded)} of {len(cells)} cells recorded"
             for name, cells in (blocks or {}).items() if cells - recorded]
    if not lines:
        return []
    return ["## Incomplete blocks", "",
            f"The tables of these blocks show the cells recorded so far. `benchlab run --matrix {matrix} "
            f"--adopt-from <this folder>` runs the rest, taking the recorded ones from here.", "", *lines, ""]


def _superseded_lines(superseded: pd.DataFrame, current: pd.DataFrame, rendered: bool) -> list[str]:
    where = ("rendered below as `superseded-*` tables" if rendered
             else "`benchlab leaderboard --include-superseded` renders them")
    listing = superseded_table(superseded, current)
    return ["## Superseded rows", "",
            f"{len(superseded)} rows of other code than the current rows of the same cells: kept in the "
            f"database, left out of the tables above ({where}).", "",
            listing.to_markdown(index=False), ""]


def _remove_stale(dest: Path, current: set[str]) -> None:
    """Delete the tables and plots an earlier render wrote and this one did not (a renamed block,
    a dropped attack). The manifest is untrusted: a file goes only if it is a plain name in
    ``dest`` and still has the content hash that render recorded, so files benchlab did not
    write, or that were edited since, are never touched."""
    try:
        previous = json.loads((dest / "manifest.json").read_text()).get("file_sha256", {})
    except (OSError, ValueError):
        return
    if not isinstance(previous, dict):
        return
    for name, digest in previous.items():
        if not isinstance(name, str) or name in current or name != Path(name).name or name in ("", ".", ".."):
            continue
        path = dest / name
        if path.suffix in (".csv", ".md", ".png") and path.is_file() and not path.is_symlink() \
                and file_sha256(path) == digest:
            path.unlink()


def _render_section(frame: pd.DataFrame, dest: Path, heading: str, prefix: str, index_lines: list[str],
                    plots: bool, metrics: TableMetrics, block: str | None, tables: list[dict]) -> list[Path]:
    written: list[Path] = []
    for (dataset, threat), by_threat in frame.groupby(["dataset", "threat"]):
        recipes = list(dict.fromkeys(by_threat["recipe"]))
        for recipe in recipes:  # different recipes are different experiments: never one table
            part = by_threat[by_threat["recipe"] == recipe]
            suffix, stem_suffix = ("", "") if len(recipes) == 1 else (
                f" [recipe {recipe or 'default'}]", f"-{_slug(recipe) or 'default'}")
            stem = dest / f"{prefix}{_slug(dataset)}-{threat}{stem_suffix}"
            title = f"{heading}{dataset} — {threat}{suffix}"
            written += _render_table(part, stem, title, threat, index_lines, plots, metrics, block)
            if stem.with_suffix(".csv") in written:
                tables.append({"title": title, "stem": stem.name, "dataset": dataset, "threat": threat,
                               "block": block, "cells": sorted(part["cell_id"])})
    return written


def _render_table(part: pd.DataFrame, stem: Path, title: str, threat: str, index_lines: list[str], plots: bool,
                  metrics: TableMetrics, block: str | None) -> list[Path]:
    metric = metrics.choose(threat, list(dict.fromkeys(part["attack"])), block)
    declared = metrics.get(metric)
    result = table(part, metric, declared.higher_is_better)
    direction = "higher is better" if declared.higher_is_better else "lower is better"
    unit = ", %" if declared.fraction else ""
    statuses = part["status"].value_counts().to_dict()
    if result.empty:
        index_lines += [f"## {title} ({metric}{unit}, {direction})", ""]
        index_lines += [f"No finished cell reports {metric} ({statuses}).", "", *_not_run_lines(part)]
        return []
    seeds = seeds_label(result)
    index_lines += [f"## {title} ({metric}{unit}, {direction}, {seeds})", ""]
    shown = _with_clean_accuracy(part, result, metric, threat).copy()
    shown[VERSION] = _row_versions(part).reindex(shown.index).fillna(UNKNOWN)
    raw = set() if declared.fraction else {*result.columns} - {COVERAGE}
    shown = _formatted(shown, raw).reset_index()
    shown.to_csv(stem.with_suffix(".csv"), index=False)
    markdown = shown.to_markdown(index=False)
    code = _code_line(part)
    stem.with_suffix(".md").write_text(f"# {title}: {metric}{unit.replace(',', '')} ({direction}, {seeds})\n\n"
                                       f"{markdown}\n"
                                       + (f"\n{code}\n" if code else ""))
    written = [stem.with_suffix(".csv"), stem.with_suffix(".md")]
    index_lines += [markdown, "", *_mark_lines(result), _status_line(statuses), "", *([code, ""] if code else []),
                    *_not_run_lines(part)]
    if plots:
        written += _plots(part, result, metric, stem, declared)
    return written


def _with_clean_accuracy(part: pd.DataFrame, result: pd.DataFrame, metric: str, threat: str) -> pd.DataFrame:
    """Clean accuracy beside a metric that is not one: per attack for poisons (each trains its own
    model), one column for evasion (every attack of a row meets the same model)."""
    if metric in ("test_acc", HEADLINE.get(threat)):
        return result
    clean = table(part, "test_acc")
    if clean.empty:
        return result
    clean, clean_std = clean.reindex(result.index), clean.attrs["std"].reindex(result.index)
    out, std = result.copy(), result.attrs["std"].copy()
    attacks = [c for c in result.columns if c not in (WORST, COVERAGE)]
    if threat == "poison":
        for attack in reversed(attacks):
            column = f"{attack} ({CLEAN})"
            out.insert(out.columns.get_loc(attack) + 1, column, clean[attack] if attack in clean else float("nan"))
            std[column] = clean_std[attack] if attack in clean_std else 0.0
    else:
        out.insert(0, CLEAN, clean[[a for a in attacks if a in clean]].mean(axis=1))
        std[CLEAN] = clean_std[[a for a in attacks if a in clean_std]].mean(axis=1)
    out.attrs = {**result.attrs, "std": std}
    return out


def _code_line(part: pd.DataFrame) -> str:
    """The code behind a table: each component with its distribution, class version and source hash."""
    roles = [(role, f"{role}_code") for role in ("dataset", "attack", "defense", "victim") if f"{role}_code" in part]
    if not roles:
        return ""
    groups = []
    for role, column in roles:
        named = dict.fromkeys(f"`{parse_spec(spec).name}` ({code})" for spec, code in zip(part[role], part[column]))
        groups.append(f"{role}s " + ", ".join(named))
    if "core_code" in part:
        groups.append("core " + ", ".join(dict.fromkeys(part["core_code"])))
    return "Code: " + "; ".join(groups) + "."


def _row_versions(part: pd.DataFrame) -> pd.Series:
    """Per (defense, victim): the code version of its cells, or a digest of them when its attacks differ."""
    def combined(versions: pd.Series) -> str:
        distinct = sorted(set(versions))
        return distinct[0] if len(distinct) == 1 else cache_key("versions", distinct)[:12]

    return part[part["status"] == "ok"].groupby(["defense", "victim"])[VERSION].agg(combined)


def reliability_marks(ok: pd.DataFrame, mean: pd.DataFrame) -> dict[tuple, str]:
    """(defense, victim, attack) -> letters of the reliability flags (``benchlab.reliability``) any of
    its seeds raised, plus ``B`` where a black-box attack beats every white-box attack of its row."""
    marks: dict[tuple, set[str]] = {}
    for column, (letter, _) in FLAGS.items():
        if column in ok:
            raised = ok[ok[column] > 0]
            for key in zip(raised["defense"], raised["victim"], raised["attack"]):
                marks.setdefault(key, set()).add(letter)
    if "black_box" in ok:  # NaN: the attack changed no input, or the row predates the check
        kind = ok.groupby(["defense", "victim", "attack"])["black_box"].max()
        for row in mean.index:
            black = [a for a in mean.columns if kind.get((*row, a)) == 1]
            white = [mean.at[row, a] for a in mean.columns if kind.get((*row, a)) == 0]
            white = [value for value in white if pd.notna(value)]
            if not white:
                continue
            for attack in black:
                if mean.at[row, attack] < min(white) - BLACK_BOX_MARGIN:
                    marks.setdefault((*row, attack), set()).add(BLACK_BOX_MARK[0])
    return {key: "".join(sorted(letters)) for key, letters in marks.items()}


def _mark_lines(result: pd.DataFrame) -> list[str]:
    """The legend of the reliability marks that appear in the table."""
    shown = set("".join(result.attrs.get("marks", {}).values()))
    legend = [*FLAGS.values(), BLACK_BOX_MARK]
    lines = [f"- [{letter}] {meaning}" for letter, meaning in legend if letter in shown]
    return ["Reliability flags (benchlab.reliability):", *lines, ""] if lines else []


def _status_line(statuses: dict) -> str:
    return "Cells: " + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))


def _not_run_lines(part: pd.DataFrame) -> list[str]:
    """One bullet per distinct reason a cell is n/a or failed, so a reader sees why a row is missing."""
    if "reason" not in part:
        return []
    skipped = part[part["status"].isin(["n/a", "failed"])]
    if skipped.empty:
        return []
    why = skipped["reason"].fillna("").str.strip().map(lambda text: text.splitlines()[0][:500] if text else "?")
    counts = skipped.assign(why=why).groupby(["status", "why"]).size()
    return [*(f"- {count} {status}: {why}" for (status, why), count in counts.items()), ""]


def _plots(part: pd.DataFrame, result: pd.DataFrame, metric: str, stem: Path, declared) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    # Matplotlib's default style (not the user's matplotlibrc) and no version/time metadata: the same
    # rows give the same bytes, so a re-rendered published leaderboard leaves git clean.
    with plt.style.context("default"), matplotlib.rc_context({"svg.hashsalt": "benchlab"}):
        return _draw(part, result, metric, stem, declared, plt)


PNG_METADATA = {"Software": None}


def _draw(part, result, metric, stem, declared, plt) -> list[Path]:
    written = []
    values = result.drop(columns=[WORST, COVERAGE])
    fig, ax = plt.subplots(figsize=(3 + 0.9 * values.shape[1], 2.5 + 0.4 * values.shape[0]))
    # The same colour means "good for the defender" whatever the metric's direction.
    scale = {"vmin": 0, "vmax": 1} if declared.fraction else {}
    image = ax.imshow(values.to_numpy(dtype=float), cmap="viridis" if declared.higher_is_better else "viridis_r",
                      aspect="auto", **scale)
    ax.set_xticks(range(values.shape[1]), values.columns, rotation=45, ha="right")
    ax.set_yticks(range(values.shape[0]), [f"{d} / {v}" for d, v in values.index])
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(stem.name)
    fig.savefig(stem.with_suffix(".png"), dpi=110, bbox_inches="tight", metadata=PNG_METADATA)  # fits long labels
    plt.close(fig)
    written.append(stem.with_suffix(".png"))
    for name, sweep in sweeps(part, metric).items():
        path = stem.parent / f"{stem.name}-sweep-{_slug(name)}.png"
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for (defense, victim), line in sweep.groupby(["defense", "victim"]):
            if len(line) < 2:  # a row outside the sweep (e.g. from another block) is no curve
                continue
            ax.errorbar(line["value"], line["mean"], yerr=line["std"], marker="o", capsize=3,
                        label=f"{defense} / {victim}")
        ax.set_xlabel(name)
        ax.set_ylabel(metric)
        ax.legend(fontsize=7)
        fig.savefig(path, dpi=110, bbox_inches="tight", metadata=PNG_METADATA)
        plt.close(fig)
        written.append(path)
    return written


def sweeps(part: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """Attacks that differ in exactly one numeric parameter form a sweep (e.g. accuracy vs eps)."""
    ok = part[part["status"] == "ok"]
    if ok.empty or metric not in ok:
        return {}
    found: dict[str, list] = {}
    for attack in ok["attack"].unique():
        spec = parse_spec(attack)
        for key, raw in spec.options:
            try:
                value = float(raw)
            except ValueError:
                continue
            rest = tuple(kv for kv in spec.options if kv[0] != key)
            found.setdefault(f"{spec.name} {key}", []).append((rest, value, attack))
    out = {}
    for name, members in found.items():
        by_rest: dict[tuple, list] = {}
        for rest, value, attack in members:
            by_rest.setdefault(rest, []).append((value, attack))
        for rest, points in by_rest.items():
            if len(points) < 3:
                continue
            rows = []
            for value, attack in points:
                cells = ok[ok["attack"] == attack].groupby(["defense", "victim"])[metric]
                for (defense, victim), series in cells:
                    rows.append({"defense": defense, "victim": victim, "value": value,
                                 "mean": series.mean(), "std": series.std(ddof=0)})
            label = name + ("" if not rest else " (" + ",".join(f"{k}={v}" for k, v in rest) + ")")
            out[label] = pd.DataFrame(rows).sort_values("value")
    return out
