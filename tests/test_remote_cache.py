"""--cache-url: a second-level artifact cache at an fsspec URL, verified on read, written atomically."""

import fsspec
import pytest
from recorded import numbers

from benchlab import cell as cell_module
from benchlab.cell import Settings, run_cell
from benchlab.matrix import Matrix


def _cell(registry):
    block = {"name": "t", "datasets": ["digits:per_class=20"], "attacks": ["uniform-noise"], "defenses": ["erm"],
             "victims": ["mlp"], "seeds": [0], "recipe": {"epochs": 1}, "budgets": {}}
    (cell,) = Matrix("t", [block]).expand(registry)
    return cell


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_a_run_elsewhere_reuses_artifacts_through_the_remote_and_refuses_tampered_ones(tmp_path, registry, scheme):
    url = f"file://{tmp_path / 'remote'}" if scheme == "file" else f"memory://benchlab-test-{tmp_path.name}"
    cell = _cell(registry)
    cell_module._fitted_memo.clear()  # trained models kept in memory by earlier tests
    first = run_cell(cell, Settings(out=str(tmp_path / "a"), cache_url=url))
    assert first["status"] == "ok" and first["metrics"]["cache_hit_poison"] is False
    fs, root = fsspec.core.url_to_fs(url)
    stored = sorted(p.rsplit("/", 2)[-2] + "/" + p.rsplit(".", 1)[-1] for p in fs.find(root))
    assert stored == ["model/json", "model/safetensors", "poison/json", "poison/safetensors"]  # no temp files
    cell_module._fitted_memo.clear()
    second = run_cell(cell, Settings(out=str(tmp_path / "b"), cache_url=url))  # another machine: empty OUT/cache
    assert second["metrics"]["cache_hit_poison"] is True and second["metrics"]["cache_hit_model"] is True
    assert numbers(second) == numbers(first)
    for path in fs.find(root):  # tamper with every remote artifact
        if path.endswith(".safetensors"):
            data = bytearray(fs.cat_file(path))
            data[-1] ^= 0xFF
            fs.pipe_file(path, bytes(data))
    cell_module._fitted_memo.clear()
    third = run_cell(cell, Settings(out=str(tmp_path / "c"), cache_url=url))
    assert third["metrics"]["cache_hit_poison"] is False and third["metrics"]["cache_hit_model"] is False
    assert numbers(third) == numbers(first)  # rebuilt, not taken from the tampered files
    if scheme == "memory":
        fs.rm(root, recursive=True)
