"""The browsable leaderboard: one self-contained static page (``index.html``) beside the rendered files.

It shows every table of a rendered leaderboard folder (per block, dataset and threat model) with its
plots inline (base64 PNG), sortable by clicking a column header, filterable by attack, defense,
victim and plugin, with each row's cells (metrics, parameters, code identity, manifest) as JSON on
demand and a mark on every cell whose rows carry reliability flags (non-empty metric values under a
``*_flags`` key, or a ``reliability`` object holding some). Nothing is fetched at view time: CSS
and script are inline and the page's Content-Security-Policy forbids every network request. All
text comes from the data and is escaped; the page is a pure function of the folder's files.
"""

from __future__ import annotations

import base64
import csv
import json
from html import escape
from pathlib import Path

PAGE = "index.html"


def reliability_flags(metrics: dict) -> list[str]:
    """The reliability flags a row's metrics carry, as text (empty: nothing flagged)."""
    found: list[str] = []
    for key, value in sorted(metrics.items()):
        if not (key.endswith("_flags") or key == "reliability"):
            continue
        if isinstance(value, dict):
            inner = value.get("flags", [k for k, v in value.items() if v is True])
            found += [str(flag) for flag in (inner if isinstance(inner, list) else [inner]) if flag]
        elif isinstance(value, list):
            found += [str(flag) for flag in value if flag]
        elif isinstance(value, str) and value:
            found.append(value)
    return list(dict.fromkeys(found))


def plugin_of(code: dict | None) -> str:
    """The plugin a component comes from: its class's top-level package (``benchlab_lwa`` -> ``lwa``)."""
    module = str((code or {}).get("class") or "").split(".")[0]
    return module.removeprefix("benchlab_") or "unknown"


def write_page(dest: str | Path, rows: list[dict], meta: dict) -> Path:
    """Write ``dest/index.html`` from the rendered files in ``dest`` and the published rows."""
    dest = Path(dest)
    info = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    by_id = {row["cell_id"]: row for row in rows}
    files = set(info.get("files", []))
    sections, toc, choices = [], [], {"attack": set(), "defense": set(), "victim": set(), "plugin": set()}
    for number, spec in enumerate(info.get("tables", [])):
        stem = Path(spec["stem"]).name  # names only: never a path out of dest
        if f"{stem}.csv" not in files:
            continue
        cells = [by_id[c] for c in spec["cells"] if c in by_id]
        anchor = f"t{number}"
        toc.append(f'<li><a href="#{anchor}">{escape(spec["title"])}</a></li>')
        sections.append(_section(dest, stem, spec, cells, anchor, files, choices))
    page = _TEMPLATE.format(
        title=escape(meta.get("title") or info.get("title") or "benchlab"),
        commit=escape(str(meta.get("git_commit") or "unknown")),
        cells=len(rows), toc="\n".join(toc), sections="\n".join(sections),
        filters="\n".join(_select(kind, sorted(values)) for kind, values in choices.items()),
        data=_script_json({row["cell_id"]: row for row in sorted(rows, key=lambda r: r["cell_id"])}),
        style=_STYLE, script=_SCRIPT)
    path = dest / PAGE
    path.write_text(page, encoding="utf-8")
    return path


def _select(kind: str, values: list[str]) -> str:
    options = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return (f'<label>{kind} <select data-filter="{kind}"><option value="">all</option>{options}'
            f'</select></label>')


def _section(dest: Path, stem: str, spec: dict, cells: list[dict], anchor: str, files: set[str],
             choices: dict) -> str:
    with open(dest / f"{stem}.csv", newline="", encoding="utf-8") as stream:
        header, *body = list(csv.reader(stream))
    heading = (dest / f"{stem}.md").read_text(encoding="utf-8").splitlines()[0].lstrip("# ") \
        if f"{stem}.md" in files else spec["title"]
    attacks = list(dict.fromkeys(row["attack"] for row in cells))
    by_row: dict[tuple, list[dict]] = {}
    for row in cells:
        by_row.setdefault((row["defense"], row["victim"]), []).append(row)
    head = "".join(f'<th{f" data-attack={_quoted(name)}" if name in attacks else ""} tabindex="0" '
                   f'title="sort by {escape(name)}">{escape(name)}</th>' for name in header)
    lines = []
    for values in body:
        record = dict(zip(header, values))
        members = by_row.get((record.get("defense"), record.get("victim")), [])
        plugins = sorted({plugin_of((row["params"].get("code") or {}).get(role)) for row in members
                          for role in ("dataset", "attack", "defense", "victim")})
        evaluated = sorted({row["attack"] for row in members if row["status"] == "ok"})
        for kind, value in (("defense", record.get("defense")), ("victim", record.get("victim"))):
            choices[kind].add(value or "")
        choices["attack"].update(evaluated)
        choices["plugin"].update(plugins)
        tds = []
        for name, value in zip(header, values):
            flags = [] if name not in attacks else sorted({flag for row in members if row["attack"] == name
                                                           for flag in reliability_flags(row["metrics"])})
            mark = (f' <span class="flag" title="{escape("; ".join(flags))}">⚠</span>' if flags else "")
            tds.append(f"<td>{escape(value)}{mark}</td>")
        ids = " ".join(sorted(row["cell_id"] for row in members))
        tds.append(f'<td><details data-cells="{escape(ids)}"><summary>{len(members)} cells</summary>'
                   f"<pre></pre></details></td>")
        lines.append(f'<tr data-defense="{escape(record.get("defense", ""))}" '
                     f'data-victim="{escape(record.get("victim", ""))}" data-plugin="{escape(" ".join(plugins))}" '
                     f'data-attack="{escape(json.dumps(evaluated))}">{"".join(tds)}</tr>')
    plots = [name for name in sorted(files) if name == f"{stem}.png" or
             (name.startswith(f"{stem}-sweep-") and name.endswith(".png"))]
    images = "".join(f'<img alt="{escape(name)}" src="data:image/png;base64,'
                     f'{base64.b64encode((dest / name).read_bytes()).decode()}">' for name in plots
                     if (dest / name).is_file())
    return (f'<section id="{anchor}" data-attacks="{escape(json.dumps(attacks))}">'
            f'<h2>{escape(spec["title"])}</h2><p class="metric">{escape(heading)}</p>'
            f'<table class="board"><thead><tr>{head}<th>cells</th></tr></thead><tbody>{"".join(lines)}'
            f'</tbody></table><p class="shown"></p><div class="plots">{images}</div></section>')


def _quoted(text: str) -> str:
    return f'"{escape(text)}"'


def _script_json(value) -> str:
    """JSON safe inside a <script> element (no "</script>" or comment openers in the data)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).replace("<", "\\u003c")


_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#1a1a1a;background:#fff}
h1{margin:0 0 .2em}h2{margin:1.6em 0 .2em;font-size:1.15em}.metric{margin:0 0 .5em;color:#555}
nav ul{columns:2;margin:.3em 0 1em}.filters{position:sticky;top:0;background:#f4f6f8;padding:.5em;
border:1px solid #d6dbe0;border-radius:4px;display:flex;flex-wrap:wrap;gap:.8em;z-index:1}
table.board{border-collapse:collapse;margin:.3em 0}
th,td{border:1px solid #cfd5db;padding:.25em .5em;text-align:right;white-space:nowrap;vertical-align:top}
th{background:#eef1f4;cursor:pointer;user-select:none;white-space:normal;max-width:14em;
word-break:break-word}section{scroll-margin-top:5em}th[aria-sort=ascending]::after{content:" ▲"}
th[aria-sort=descending]::after{content:" ▼"}td:nth-child(1),td:nth-child(2){text-align:left}
th.picked,td.picked{background:#fff3c4}.flag{color:#b35900;cursor:help}
details pre{text-align:left;max-width:60em;max-height:30em;overflow:auto;white-space:pre-wrap;font-size:12px}
.plots img{max-width:48%;margin:.3em;border:1px solid #eee}.shown{color:#555;font-size:12px;margin:0}
section.hidden,tr.hidden{display:none}
"""

_SCRIPT = """
"use strict";
const CELLS = JSON.parse(document.getElementById("cells").textContent);
const number = (text) => { const m = /-?\\d+(\\.\\d+)?(e-?\\d+)?/.exec(text); return m ? parseFloat(m[0]) : null; };
function sortBy(th) {
  const table = th.closest("table"), index = [...th.parentNode.children].indexOf(th);
  const ascending = th.getAttribute("aria-sort") !== "ascending";
  table.querySelectorAll("th").forEach((other) => other.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const rows = [...table.tBodies[0].rows];
  const key = (row) => row.cells[index].textContent.trim();
  rows.sort((a, b) => {
    const x = number(key(a)), y = number(key(b));
    if (x === null || y === null) {  // blanks and n/a last in both directions; text compares as text
      if (x === null && y === null) return (ascending ? 1 : -1) * key(a).localeCompare(key(b));
      return x === null ? 1 : -1;
    }
    return ascending ? x - y : y - x;
  });
  rows.forEach((row) => table.tBodies[0].appendChild(row));
}
function applyFilters() {
  const chosen = {};
  document.querySelectorAll("select[data-filter]").forEach((s) => { chosen[s.dataset.filter] = s.value; });
  document.querySelectorAll("section[data-attacks]").forEach((section) => {
    const attacks = JSON.parse(section.dataset.attacks);
    section.querySelectorAll(".picked").forEach((el) => el.classList.remove("picked"));
    let shown = 0;
    const rows = section.querySelectorAll("tbody tr");
    rows.forEach((row) => {
      const keep = (!chosen.defense || row.dataset.defense === chosen.defense)
        && (!chosen.victim || row.dataset.victim === chosen.victim)
        && (!chosen.plugin || row.dataset.plugin.split(" ").includes(chosen.plugin))
        && (!chosen.attack || JSON.parse(row.dataset.attack).includes(chosen.attack));
      row.classList.toggle("hidden", !keep);
      shown += keep;
    });
    if (chosen.attack && attacks.includes(chosen.attack)) {
      const th = [...section.querySelectorAll("th")].find((h) => h.dataset.attack === chosen.attack);
      const index = [...th.parentNode.children].indexOf(th);
      th.classList.add("picked");
      rows.forEach((row) => row.cells[index].classList.add("picked"));
    }
    section.classList.toggle("hidden", shown === 0);
    section.querySelector(".shown").textContent = shown + " of " + rows.length + " rows shown";
  });
}
document.querySelectorAll("table.board th").forEach((th) => {
  th.addEventListener("click", () => sortBy(th));
  th.addEventListener("keydown", (event) => { if (event.key === "Enter") sortBy(th); });
});
document.querySelectorAll("select[data-filter]").forEach((s) => s.addEventListener("change", applyFilters));
document.querySelectorAll("details[data-cells]").forEach((details) => {
  details.addEventListener("toggle", () => {
    const pre = details.querySelector("pre");
    if (details.open && !pre.textContent) {
      const cells = details.dataset.cells.split(" ").filter(Boolean).map((id) => CELLS[id]);
      pre.textContent = JSON.stringify(cells, null, 1);
    }
  });
});
applyFilters();
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'">
<link rel="icon" href="data:,">
<title>{title} — benchlab leaderboard</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
<p>benchlab leaderboard of {cells} recorded cells, published from commit <code>{commit}</code>. Click a column
header to sort; the filters show the rows evaluated under an attack, of a defense, victim or plugin. ⚠ marks a
cell whose runs carry reliability flags (hover for them); "cells" shows each row's recorded runs as JSON.</p>
<nav><ul>
{toc}
</ul></nav>
<div class="filters">
{filters}
</div>
{sections}
<script type="application/json" id="cells">{data}</script>
<script>{script}</script>
</body>
</html>
"""
