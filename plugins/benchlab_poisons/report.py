"""Markdown tables of this plugin's poisons from a run directory (the README's results come from here).

    python -m benchlab_poisons.report --out runs [--matrix quick]

One table per dataset: rows are (defense, victim), columns the poisons' clean test accuracy
(mean ± std over seeds, %), and BadNets' attack success rate beside its clean accuracy.
"""

from __future__ import annotations

import argparse

import pandas as pd

from benchlab import ResultsStore

CONTROLS = ("clean", "uniform-noise", "random-pixels")
POISONS = ("error-min", "adv-poison", "one-pixel-shortcut", "badnets")


def _cell(values: pd.Series) -> str:
    if values.empty:
        return ""
    mean, std = 100 * values.mean(), 100 * values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f} (n={len(values)})"


def tables(frame: pd.DataFrame) -> str:
    """The markdown of every dataset's table (poison cells of this plugin and its controls only)."""
    name = frame["attack"].str.split(":").str[0]
    frame = frame[(frame["threat"] == "poison") & (frame["status"] == "ok") & name.isin(CONTROLS + POISONS)]
    out = []
    for dataset, rows in frame.groupby("dataset", sort=False):
        columns: dict[str, dict] = {}
        for (attack, defense, victim), cells in rows.groupby(["attack", "defense", "victim"], sort=False):
            columns.setdefault(f"{attack}: test_acc", {})[defense, victim] = _cell(cells["test_acc"])
            if "backdoor_success_rate" in cells and cells["backdoor_success_rate"].notna().any():
                columns.setdefault(f"{attack}: backdoor_success_rate", {})[defense, victim] = \
                    _cell(cells["backdoor_success_rate"].dropna())
        table = pd.DataFrame(columns).fillna("")
        table.index = [f"{d} / {v}" for d, v in table.index]
        # One column per row of the markdown: easier to read than a very wide table.
        out += [f"#### {dataset}", "", table.T.rename_axis("attack: metric").to_markdown(), ""]
    return "\n".join(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs", help="run directory holding results.sqlite")
    parser.add_argument("--matrix", default=None, help="only this matrix's rows")
    args = parser.parse_args(argv)
    print(tables(ResultsStore(args.out).frame(args.matrix)))


if __name__ == "__main__":
    main()
