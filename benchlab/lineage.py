"""Lineage: which recorded rows are current, and which are superseded by rows of other code.

Rows are never deleted. Changed code is a new code identity (:mod:`benchlab.code_identity`), so its
cells run again and the new rows sit beside the old ones; a leaderboard must never mix the two.
Rows are grouped by *logical cell*, what a table shows as one entry: (dataset, threat, attack,
defense, victim, recipe) as displayed, over all seeds. Per logical cell exactly one code identity is
current: the installed code's when rows of it exist, else the most recently finished one (rows of a
plugin no longer installed, or of unknown code from databases written before code identities were
recorded). Every other row of that logical cell is superseded, so the seeds a table averages are
always seeds of one identity.
"""

from __future__ import annotations

import pandas as pd

from .code_identity import short

UNKNOWN = "unknown"
GROUP = ("dataset", "threat", "attack", "defense", "victim", "recipe")
ROLES = ("dataset", "attack", "defense", "victim", "core")


def recipe_text(recipe) -> str:
    """Recipe overrides as ``key=value,...`` (sorted; empty when the victims' own recipes apply)."""
    return ",".join(f"{key}={value}" for key, value in sorted(dict(recipe or {}).items()))


def logical_key(dataset: str, threat: str, attack: str, defense: str, victim: str, seed, recipe) -> str:
    """One seed of a logical cell, whatever code computed it (matrix blocks are sets of these)."""
    text = recipe if isinstance(recipe, str) else recipe_text(recipe)
    return " | ".join([dataset, threat, attack, defense, victim, f"seed {int(seed)}", text])


def lineage_columns(row: dict) -> dict:
    """The columns a stored row adds to a results frame: versions, recipe, logical cell, finish time."""
    params = row.get("params") or {}
    code = params.get("code") or {}
    recipe = params.get("recipe") or {}
    out = {"version": row.get("code_version") or UNKNOWN, "recipe": recipe_text(recipe),
           "cell": logical_key(row["dataset"], row["threat"], row["attack"], row["defense"], row["victim"],
                               row["seed"], recipe),
           "finished_at": row.get("finished_at")}
    out.update({f"{role}_code": short(code.get(role)) for role in ROLES})
    return out


def with_lineage(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the lineage columns present (frames built by hand lack some: unknown code)."""
    if frame.empty:
        return frame
    frame = frame.copy()
    if "version" not in frame:
        frame["version"] = UNKNOWN
    frame["version"] = frame["version"].fillna(UNKNOWN)
    frame["recipe"] = frame["recipe"].fillna("") if "recipe" in frame else ""
    if "finished_at" not in frame:
        frame["finished_at"] = 0.0
    if "cell" not in frame:
        frame["cell"] = [logical_key(*values) for values in
                         frame[["dataset", "threat", "attack", "defense", "victim", "seed", "recipe"]].itertuples(
                             index=False)]
    return frame


def split_current(frame: pd.DataFrame, installed: set[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(current rows, superseded rows); ``installed`` are the cell ids of the installed code."""
    frame = with_lineage(frame)
    if frame.empty:
        return frame, frame
    frame = frame.assign(_installed=frame["cell_id"].isin(installed or set()))
    identities = (frame.groupby([*GROUP, "version"], dropna=False)
                  .agg(installed=("_installed", "max"), latest=("finished_at", "max"))
                  .reset_index()
                  .sort_values(["installed", "latest"], ascending=False, kind="stable"))
    chosen = {tuple(values[:-1]): values[-1] for values in
              identities.drop_duplicates(list(GROUP))[[*GROUP, "version"]].itertuples(index=False)}
    keys = frame[list(GROUP)].itertuples(index=False)
    current = pd.Series([chosen[tuple(key)] == version for key, version in zip(keys, frame["version"])],
                        index=frame.index)
    frame = frame.drop(columns="_installed")
    return frame[current], frame[~current]


def layers(superseded: pd.DataFrame) -> list[pd.DataFrame]:
    """Superseded rows as successive generations, newest first: each has one identity per logical cell."""
    out = []
    while not superseded.empty:
        newest, superseded = split_current(superseded)
        out.append(newest)
    return out


def superseded_table(superseded: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """One line per superseded identity of a logical cell: its seeds and the version that replaced it."""
    if superseded.empty:
        return pd.DataFrame()
    now = {} if current.empty else {
        tuple(values[:-1]): values[-1]
        for values in current[[*GROUP, "version"]].drop_duplicates().itertuples(index=False)}
    lines = []
    for (*key, version), part in superseded.groupby([*GROUP, "version"], dropna=False, sort=True):
        lines.append({**dict(zip(GROUP, key)), "seeds": ", ".join(map(str, sorted(part["seed"].unique()))),
                      "version": version, "current version": now.get(tuple(key), "none")})
    return pd.DataFrame(lines)
