"""benchmarks/README.md is rendered from the committed pytest-benchmark JSON, never typed by hand."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _renderer():
    spec = importlib.util.spec_from_file_location("benchmarks_render", ROOT / "benchmarks" / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_benchmarks_readme_is_the_render_of_the_committed_results():
    render = _renderer()
    assert (ROOT / "benchmarks" / "README.md").read_text() == render.render(), (
        "benchmarks/README.md is stale: run python benchmarks/render.py")


def test_render_shows_the_ratios_and_the_machine_and_load_recorded_in_the_json(tmp_path):
    render = _renderer()
    bench = tmp_path / "test_thing.py"
    bench.write_text('"""Thing A against thing B.\n\nDetails."""\n')
    result = tmp_path / "test_thing.json"
    result.write_text(json.dumps({
        "machine_info": {"cpu": {"brand_raw": "Some CPU"}, "cpu_count": 2, "python_version": "3.11.2",
                         "torch": "2.5.0", "load_average_start": 7.25, "load_average_end": 9.5},
        "benchmarks": [{"name": "test_thing[mlp]", "stats": {"median": 0.0123},
                        "extra_info": {"speedup": 1.5, "plain_s": 0.3, "vmap speed-up": 2.25}}]}))
    lines = render.section(bench, result)
    assert lines[2] == "Thing A against thing B."
    assert ("*machine: Some CPU, 2 cores (Python 3.11.2, torch 2.5.0); load: 1-minute load average 7.2 at the "
            "start, 9.5 at the end*") in lines
    assert "| `test_thing[mlp]` | 1.50×, vmap 2.25× | 12.3 ms |" in lines  # seconds are not figures
    assert any("Not recorded" in line for line in render.section(bench, None))
