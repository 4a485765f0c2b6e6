"""Published runs as data: a leaderboard folder holds the rows it was rendered from, and renders again
from them alone.

``rows.jsonl`` has one stored row per line (sorted keys, the run's order: by start time, then cell
id) with its metrics, parameters, code identity and manifest; ``leaderboard.json`` has everything
else a render decides from the installed code at the time of publishing (the matrix's blocks, which
rows were the installed code's, the declared metrics, the title and git commit). Rendering from the
folder therefore needs no plugin, database or clock, and gives the same bytes every time
(``benchlab leaderboard --from DIR``).

A committed folder is untrusted input: it is parsed as JSON only, every field is checked for type
(and the threat model against the known ones, since file names are built from it) before anything
is rendered, and every file is written inside the destination.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from .metrics import Metric, TableMetrics
from .store import jsonable

ROWS = "rows.jsonl"
META = "leaderboard.json"
FORMAT = 1
THREATS = ("poison", "evasion")
STATUSES = ("ok", "failed", "n/a")
MAX_BYTES = 256 * 2**20  # a folder far larger than any matrix's rows is refused, not parsed

# Field -> accepted JSON types of one row (bool is excluded from numbers below).
_ROW_FIELDS = {
    "cell_id": str, "matrix": str, "block": str, "dataset": str, "threat": str, "attack": str,
    "defense": str, "victim": str, "seed": int, "status": str, "metrics": dict, "reason": (str, type(None)),
    "params": dict, "manifest": dict, "started_at": (int, float), "finished_at": (int, float),
    "duration_s": (int, float), "code_version": (str, type(None)),
}
_OPTIONAL = {"code_version", "reason"}


class PublishedError(ValueError):
    """A published folder that is missing, malformed or of an unknown format (one line, no traceback)."""


def _scrubbed(value, replacements: list[tuple[str, str]]):
    """``value`` with machine-local absolute paths (the run directory, checkout, environment, temp
    directory) replaced by placeholders, so a published row says nothing about where it ran."""
    if isinstance(value, str):
        for old, new in replacements:
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {key: _scrubbed(item, replacements) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item, replacements) for item in value]
    return value


def _replacements(out: str | Path | None) -> list[tuple[str, str]]:
    checkout = Path(__file__).resolve().parent.parent
    pairs = [(str(Path(out).resolve()), "<run>")] if out is not None else []
    pairs += [(sys.prefix, "<python>"), (str(checkout), "<checkout>"), (tempfile.gettempdir(), "<tmp>"),
              (str(Path.home()), "~")]
    # Longest first: a run directory inside the checkout becomes <run>, not <checkout>/runs.
    return sorted({(old, new) for old, new in pairs if len(old) > 1}, key=lambda pair: -len(pair[0]))


def write(dest: str | Path, rows: list[dict], *, title: str, blocks: dict[str, set[str]] | None,
          installed: set[str], metrics: TableMetrics, git_commit: str | None, out: str | Path | None = None,
          skipped: dict[str, str] | None = None) -> None:
    """Write ``rows`` and the render's decisions into ``dest`` (``rows.jsonl``, ``leaderboard.json``)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    replacements = _replacements(out)
    ordered = sorted(rows, key=lambda row: (row.get("started_at") or 0.0, row["cell_id"]))
    lines = [json.dumps(_scrubbed({k: row.get(k) for k in _ROW_FIELDS}, replacements), sort_keys=True,
                        default=jsonable, ensure_ascii=False) for row in ordered]
    ids = {row["cell_id"] for row in rows}
    meta = {
        "format": FORMAT, "title": title, "git_commit": git_commit,
        "blocks": None if blocks is None else {name: sorted(cells) for name, cells in blocks.items()},
        "installed": sorted(installed & ids),
        "skipped": dict(sorted((skipped or {}).items())),
        "metrics": {"forced": metrics.forced, "by_block": dict(sorted(metrics.by_block.items())),
                    "headlines": dict(sorted(metrics.headlines.items())),
                    "declared": {name: m.describe() for name, m in sorted(metrics.declared.items())}},
    }
    _atomic_write(dest / ROWS, "".join(line + "\n" for line in lines))
    _atomic_write(dest / META, json.dumps(meta, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    """A reader never sees half a file (and a killed publish leaves the old one)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def is_published(folder: str | Path) -> bool:
    return (Path(folder) / ROWS).is_file() and (Path(folder) / META).is_file()


def load(folder: str | Path) -> tuple[list[dict], dict]:
    """Validated ``(rows, meta)`` of a published folder; :class:`PublishedError` names the first problem."""
    folder = Path(folder)
    if not is_published(folder):
        raise PublishedError(f"{folder}: not a published leaderboard (needs {ROWS} and {META}; "
                             f"`benchlab run --publish` or `benchlab leaderboard --out RUN` writes them)")
    meta = _check_meta(_read_json(folder / META), folder / META)
    rows = []
    with open(folder / ROWS, encoding="utf-8") as stream:
        _check_size(folder / ROWS)
        for number, line in enumerate(stream, 1):
            if line.strip():
                rows.append(_check_row(_parse(line, f"{folder / ROWS}:{number}"), f"{folder / ROWS}:{number}"))
    ids = [row["cell_id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise PublishedError(f"{folder / ROWS}: a cell_id appears twice")
    return rows, meta


def _check_size(path: Path) -> None:
    if path.stat().st_size > MAX_BYTES:
        raise PublishedError(f"{path}: larger than {MAX_BYTES // 2**20} MiB")


def _read_json(path: Path):
    _check_size(path)
    return _parse(path.read_text(encoding="utf-8"), str(path))


def _parse(text: str, where: str):
    try:
        return json.loads(text)
    except ValueError as error:
        raise PublishedError(f"{where}: not JSON ({error})") from None


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_row(row, where: str) -> dict:
    if not isinstance(row, dict):
        raise PublishedError(f"{where}: a row must be a JSON object")
    unknown = set(row) - set(_ROW_FIELDS)
    if unknown:
        raise PublishedError(f"{where}: unknown fields {sorted(unknown)}; valid: {sorted(_ROW_FIELDS)}")
    for key, types in _ROW_FIELDS.items():
        if key not in row:
            if key in _OPTIONAL:
                row[key] = None
                continue
            raise PublishedError(f"{where}: missing field {key!r}")
        value = row[key]
        if types in ((int, float), int):
            ok = _is_number(value) and (types is not int or isinstance(value, int))
        else:
            ok = isinstance(value, types)
        if not ok:
            raise PublishedError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    if row["threat"] not in THREATS:
        raise PublishedError(f"{where}: threat {row['threat']!r} is not one of {THREATS}")
    if row["status"] not in STATUSES:
        raise PublishedError(f"{where}: status {row['status']!r} is not one of {STATUSES}")
    for name, value in row["metrics"].items():
        if not (isinstance(value, int | float) or value is None or _is_flags(value)):
            raise PublishedError(f"{where}: metric {name!r} must be a number, boolean, null or a list/object of "
                                 f"strings, not {type(value).__name__}")
    for key in ("params", "manifest"):
        _check_plain(row[key], f"{where}: {key}")
    return row


def _is_flags(value) -> bool:
    """Non-numeric metric values rows may carry (e.g. reliability flags): strings, lists or objects of them."""
    if isinstance(value, str):
        return True
    if isinstance(value, list):
        return all(isinstance(item, str | int | float | bool) for item in value)
    if isinstance(value, dict):
        return all(isinstance(item, str | int | float | bool | type(None)) or _is_flags(item)
                   for item in value.values())
    return False


def _check_plain(value, where: str, depth: int = 0) -> None:
    """JSON objects nest a few levels at most in a row; anything deeper is refused, not recursed into."""
    if depth > 8:
        raise PublishedError(f"{where}: nested too deeply")
    if isinstance(value, dict):
        for item in value.values():
            _check_plain(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_plain(item, where, depth + 1)


def _check_meta(meta, where: Path) -> dict:
    if not isinstance(meta, dict):
        raise PublishedError(f"{where}: must be a JSON object")
    if meta.get("format") != FORMAT:
        raise PublishedError(f"{where}: format {meta.get('format')!r} is not {FORMAT} (written by another benchlab)")
    if not isinstance(meta.get("title"), str) or not isinstance(meta.get("git_commit"), str | type(None)):
        raise PublishedError(f"{where}: 'title' must be a string and 'git_commit' a string or null")
    blocks = meta.get("blocks")
    if blocks is not None and not (isinstance(blocks, dict) and all(
            isinstance(cells, list) and all(isinstance(c, str) for c in cells) for cells in blocks.values())):
        raise PublishedError(f"{where}: 'blocks' must map block names to lists of cells")
    installed = meta.get("installed")
    if not (isinstance(installed, list) and all(isinstance(c, str) for c in installed)):
        raise PublishedError(f"{where}: 'installed' must be a list of cell ids")
    skipped = meta.setdefault("skipped", {})
    if not (isinstance(skipped, dict) and all(isinstance(v, str) for v in skipped.values())):
        raise PublishedError(f"{where}: 'skipped' must map block names to reasons")
    metrics = meta.get("metrics")
    if not isinstance(metrics, dict):
        raise PublishedError(f"{where}: 'metrics' must be an object")
    if not isinstance(metrics.get("forced"), str | type(None)):
        raise PublishedError(f"{where}: 'metrics.forced' must be a string or null")
    for key in ("by_block", "headlines"):
        value = metrics.get(key)
        if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
            raise PublishedError(f"{where}: 'metrics.{key}' must map names to metric names")
    declared = metrics.get("declared")
    if not isinstance(declared, dict):
        raise PublishedError(f"{where}: 'metrics.declared' must be an object")
    for name, fields in declared.items():
        if not (isinstance(fields, dict) and fields.get("name") == name and isinstance(fields.get("help"), str)
                and all(isinstance(fields.get(k), bool) for k in ("higher_is_better", "headline", "fraction"))
                and set(fields) == {"name", "higher_is_better", "help", "headline", "fraction"}):
            raise PublishedError(f"{where}: declared metric {name!r} is malformed")
    return meta


def table_metrics(meta: dict) -> TableMetrics:
    metrics = meta["metrics"]
    return TableMetrics({name: Metric(**fields) for name, fields in metrics["declared"].items()},
                        metrics["forced"], dict(metrics["by_block"]), dict(metrics["headlines"]))


def render(folder: str | Path, dest: str | Path | None = None, *, html: bool = False, plots: bool = True,
           include_superseded: bool = False) -> Path:
    """Render the published ``folder`` into ``dest`` (default: the folder itself); return ``dest``.
    Into another folder, the data are copied too, so that folder renders again on its own."""
    from .leaderboard import render as render_tables
    from .store import rows_frame

    rows, meta = load(folder)
    dest = Path(dest) if dest is not None else Path(folder)
    if dest.resolve() != Path(folder).resolve():
        dest.mkdir(parents=True, exist_ok=True)
        for name in (ROWS, META):
            _atomic_write(dest / name, (Path(folder) / name).read_text(encoding="utf-8"))
    frame = rows_frame(rows)
    blocks = None if meta["blocks"] is None else {name: set(cells) for name, cells in meta["blocks"].items()}
    if blocks is not None and not frame.empty:
        frame = frame[frame["cell"].isin(set().union(*blocks.values())) | frame["cell_id"].isin(
            set().union(*blocks.values()))]
    render_tables(frame, dest, title=meta["title"], blocks=blocks, metrics=table_metrics(meta),
                  installed=set(meta["installed"]), include_superseded=include_superseded, plots=plots,
                  skipped=meta["skipped"] or None, manifest={"git_commit": meta["git_commit"], "data": [ROWS, META]})
    if html:
        from .html_page import write_page

        write_page(dest, rows, meta)
    return dest
