"""Render benchmarks/README.md from the pytest-benchmark JSON files in benchmarks/results/.

    python benchmarks/render.py          # rewrite benchmarks/README.md
    python benchmarks/render.py --check  # exit 1 when the README is not the render of the results

A results file is the ``--benchmark-json`` output of one benchmark file (see RUN below); the
machine it ran on and the load beside it are recorded in it by ``conftest.py``. Each figure shown
is a ratio between two ways of doing the same work timed in the same run (the ``extra_info`` keys
ending in ``speedup``, ``speed-up``, ``ratio`` or ``overhead``); absolute seconds are only context.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
RUN = (".venv/bin/python -m pytest benchmarks/{file} --benchmark-only -p no:randomly "
       "--benchmark-json=benchmarks/results/{stem}.json")
RATIO_SUFFIXES = ("speedup", "speed-up", "ratio", "overhead")

INTRO = """# Benchmarks

pytest-benchmark files, not part of the default test run. Each figure is a ratio against a baseline
timed in the same run (absolute seconds depend on the machine and its load; the load average beside
each run is shown with its table, and a busy machine makes the ratios noisy). Every table below is
rendered by `benchmarks/render.py` from the JSON output committed in `benchmarks/results/`
(`python benchmarks/render.py` after rerunning a benchmark; a test checks the two agree). A table
lists the benchmarks of its file that were run: on a busy machine the slowest may be left out.
"""


def description(file: Path) -> str:
    """The first paragraph of the benchmark module's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(file.read_text())) or ""
    return " ".join(doc.split("\n\n")[0].split())


def ratios(extra: dict) -> str:
    figures = []
    for key, value in extra.items():
        lowered = key.lower()
        suffix = next((s for s in RATIO_SUFFIXES if lowered.endswith(s)), None)
        if suffix is None or not isinstance(value, int | float):
            continue
        name = key[: len(key) - len(suffix)].strip(" _")
        figures.append(f"{name} {value:.2f}×" if name else f"{value:.2f}×")
    return ", ".join(figures) or "—"


def caption(machine: dict) -> str:
    cpu = machine.get("cpu", {})
    name = cpu.get("brand_raw") or machine.get("processor") or machine.get("machine", "?")
    cores = machine.get("cpu_count", cpu.get("count", "?"))
    flags = set(cpu.get("flags", ()))
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    name = f"{name} ({simd})" if simd else name
    load = ""
    if "load_average_start" in machine:
        load = (f"; load: 1-minute load average {machine['load_average_start']:.1f} at the start, "
                f"{machine['load_average_end']:.1f} at the end")
    software = f"Python {machine.get('python_version', '?')}"
    software += f", torch {machine['torch']}" if "torch" in machine else ""
    return f"machine: {name}, {cores} cores ({software}){load}"


def section(file: Path, result: Path | None) -> list[str]:
    lines = [f"## `{file.name}`", "", description(file), ""]
    if result is None:
        return [*lines, f"Not recorded. Run: `{RUN.format(file=file.name, stem=file.stem)}`", ""]
    data = json.loads(result.read_text())
    lines += [f"*{caption(data['machine_info'])}*", "",
              "| benchmark | figures (ratios in the same run) | timed call, median |", "|---|---|---|"]
    for bench in data["benchmarks"]:
        median = bench["stats"]["median"]
        timed = f"{median * 1e3:.1f} ms" if median < 1 else f"{median:.2f} s"
        timed = timed if median >= 1e-5 else "—"  # a placeholder call: the figures are its whole result
        lines.append(f"| `{bench['name']}` | {ratios(bench.get('extra_info', {}))} | {timed} |")
    return [*lines, ""]


def render() -> str:
    lines = [INTRO]
    for file in sorted(HERE.glob("test_*.py")):
        result = RESULTS / f"{file.stem}.json"
        lines += section(file, result if result.exists() else None)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if README.read_text() != text:
            print("benchmarks/README.md is not the render of benchmarks/results/: "
                  "run python benchmarks/render.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
