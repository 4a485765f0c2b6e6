"""Leaderboards: results rows -> per dataset and threat model tables (CSV, Markdown) and plots.

Rows are defense × victim, columns are attacks, cells are mean ± std over seeds of the headline
metric (clean test accuracy for poisoning, robust accuracy for evasion). Rows are ranked by their
worst case over attacks, as RobustBench ranks by AutoAttack, but a row evaluated under fewer attacks
(the others n/a for it, e.g. gradient attacks on a random forest) ranks below every row evaluated
under more: escaping an attack by being incompatible with it is not surviving it. Given the matrix,
there is one table per block (a designed experiment with one attack set), else one per dataset and
threat model. ``results.csv`` keeps every metric of every cell (results as data); ``manifest.json``
says what produced them.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pandas as pd

from .params import parse_spec
from .reliability import BLACK_BOX_MARK, FLAGS

HEADLINE = {"poison": "test_acc", "evasion": "robust_acc"}
WORST = "worst case"
COVERAGE = "attacks"
# A black-box attack must beat the best white-box attack of its row by more than this to be flagged.
BLACK_BOX_MARGIN = 0.01


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def table(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean ± std over seeds of ``metric``; index (defense, victim), one column per attack."""
    ok = frame[frame["status"] == "ok"]
    if ok.empty or metric not in ok:
        return pd.DataFrame()
    grouped = ok.groupby(["defense", "victim", "attack"])[metric].agg(["mean", "std", "count"])
    mean = grouped["mean"].unstack("attack")
    std = grouped["std"].unstack("attack").fillna(0.0)
    mean.columns.name = std.columns.name = None
    # Attack columns keep the order the matrix listed them in (first appearance).
    order = list(dict.fromkeys(a for a in frame["attack"] if a in mean.columns))
    mean, std = mean[order], std[order]
    result = mean.copy()
    result[WORST] = mean.min(axis=1)
    result[COVERAGE] = mean.notna().sum(axis=1)
    result = result.sort_values([COVERAGE, WORST], ascending=False)
    result.attrs["std"] = std.reindex(result.index)
    na = frame[frame["status"] == "n/a"]
    result.attrs["na"] = set(zip(na["defense"], na["victim"], na["attack"]))
    result.attrs["marks"] = reliability_marks(ok, mean) if metric == "robust_acc" else {}
    return result


def _formatted(result: pd.DataFrame) -> pd.DataFrame:
    std = result.attrs.get("std", pd.DataFrame())
    na = result.attrs.get("na", set())
    marks = result.attrs.get("marks", {})
    out = pd.DataFrame(index=result.index)
    for column in result.columns:
        values = []
        if column == COVERAGE:
            out[column] = result[column].astype(int)
            continue
        for key, mean in result[column].items():
            spread = std[column].get(key) if column in std else None
            if pd.isna(mean):  # incompatible (n/a) vs. not part of the matrix (blank)
                values.append("n/a" if (*key, column) in na else "")
            else:
                text = f"{100 * mean:.1f} ± {100 * spread:.1f}" if spread else f"{100 * mean:.1f}"
                mark = marks.get((*key, column))
                values.append(f"{text} [{','.join(mark)}]" if mark else text)
        out[column] = values
    out.insert(0, "rank", range(1, len(out) + 1))
    return out


def _sections(frame: pd.DataFrame, blocks: dict[str, set[str]] | None):
    """(heading prefix, file prefix, rows) per block when the blocks' cell ids are known, else one."""
    if frame.empty:
        return
    if not blocks or len(blocks) == 1:  # one block: its name would only lengthen the file names
        yield "", "", frame
        return
    for name, cell_ids in blocks.items():
        part = frame[frame["cell_id"].isin(cell_ids)]
        if not part.empty:
            yield f"{name}: ", f"{_slug(name)}-", part


def render(frame: pd.DataFrame, dest: str | Path, *, title: str = "benchlab", manifest: dict | None = None,
           plots: bool = True, blocks: dict[str, set[str]] | None = None) -> list[Path]:
    """Write tables, plots, ``results.csv`` and ``manifest.json`` into ``dest``; return the paths.

    ``blocks`` maps block names to their cell ids (``Matrix.block_cell_ids``): one table per block,
    dataset and threat model. A cell shared by two blocks appears in both.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    index_lines = [f"# {title}", ""]
    if frame.empty:
        index_lines.append("No results yet.")
    for heading, prefix, section in _sections(frame, blocks):
        written += _render_section(section, dest, heading, prefix, index_lines, plots)
    results_csv = dest / "results.csv"
    frame.drop(columns=["reason"], errors="ignore").to_csv(results_csv, index=False)
    (dest / "README.md").write_text("\n".join(index_lines) + "\n")
    written += [results_csv, dest / "README.md"]
    _remove_stale(dest, {p.name for p in written})
    info = {"title": title, "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cells": int(len(frame)), "files": sorted(p.name for p in written), **(manifest or {})}
    (dest / "manifest.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
    return [*written, dest / "manifest.json"]


def _remove_stale(dest: Path, current: set[str]) -> None:
    """Delete the tables and plots an earlier render listed in its manifest and this one did not
    write (a renamed block, a dropped attack); files benchlab did not write are never touched."""
    try:
        previous = json.loads((dest / "manifest.json").read_text()).get("files", [])
    except (OSError, ValueError):
        return
    for name in set(previous) - current:
        path = dest / Path(name).name  # names only: never outside dest
        if path.suffix in (".csv", ".md", ".png"):
            path.unlink(missing_ok=True)


def _render_section(frame: pd.DataFrame, dest: Path, heading: str, prefix: str, index_lines: list[str],
                    plots: bool) -> list[Path]:
    written: list[Path] = []
    for (dataset, threat), part in frame.groupby(["dataset", "threat"]):
        metric = HEADLINE.get(threat, "test_acc")
        result = table(part, metric)
        stem = dest / f"{prefix}{_slug(dataset)}-{threat}"
        index_lines += [f"## {heading}{dataset} — {threat} ({metric}, %, mean ± std over seeds)", ""]
        statuses = part["status"].value_counts().to_dict()
        if result.empty:
            index_lines += [f"No finished cells ({statuses}).", "", *_not_run_lines(part)]
            continue
        shown = _formatted(result)
        shown.reset_index().to_csv(stem.with_suffix(".csv"), index=False)
        markdown = shown.reset_index().to_markdown(index=False)
        stem.with_suffix(".md").write_text(f"# {heading}{dataset} — {threat}: {metric} (%)\n\n{markdown}\n")
        written += [stem.with_suffix(".csv"), stem.with_suffix(".md")]
        index_lines += [markdown, "", *_mark_lines(result), _status_line(statuses), "", *_not_run_lines(part)]
        if plots:
            written += _plots(part, result, metric, stem)
    return written


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


def _plots(part: pd.DataFrame, result: pd.DataFrame, metric: str, stem: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    written = []
    values = result.drop(columns=[WORST, COVERAGE])
    fig, ax = plt.subplots(figsize=(3 + 0.9 * values.shape[1], 2.5 + 0.4 * values.shape[0]))
    image = ax.imshow(values.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(values.shape[1]), values.columns, rotation=45, ha="right")
    ax.set_yticks(range(values.shape[0]), [f"{d} / {v}" for d, v in values.index])
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(stem.name)
    fig.savefig(stem.with_suffix(".png"), dpi=110, bbox_inches="tight")  # fits long tick labels
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
        fig.savefig(path, dpi=110, bbox_inches="tight")
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
