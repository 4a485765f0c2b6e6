"""The Ray executor on a real two-node cluster (``ray start``: a head and a worker node on this
machine), with every Ray worker barred from the driver's ``--out``: artifacts travel through the
depot, and the metrics are those of the local executor."""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recorded import numbers

from benchlab.cell import Settings
from benchlab.matrix import load_matrix
from benchlab.runner import run_matrix
from benchlab.store import ResultsStore

ray = pytest.importorskip("ray", reason="Ray is not installed (the `ray` extra)")

MATRIX = """
name = "two-nodes"
seeds = [0]
[recipe]
epochs = 2
[[block]]
name = "b"
datasets = ["digits:per_class=40"]
attacks = ["clean", "uniform-noise", "random-pixels", "none", "fgsm"]
defenses = ["erm", "weight-decay"]
victims = ["mlp"]
"""


DRIVER = """
import json, sys, time
sys.path.insert(0, {tests!r})
import ray, ray_barrier
from benchlab.cell import Settings
from benchlab.matrix import load_matrix
from benchlab.plugins import get_registry
from benchlab.runner import run_matrix

ray.cloudpickle.register_pickle_by_value(ray_barrier)
ray.init(address={address!r}, log_to_driver=False, runtime_env={{
    "worker_process_setup_hook": ray_barrier.install,
    "env_vars": {{"BENCHLAB_TEST_BARRED": {barred!r}, "BENCHLAB_TEST_VIOLATIONS": {violations!r}}}}})
deadline = time.monotonic() + 120
while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
    time.sleep(0.5)
nodes = len([n for n in ray.nodes() if n["Alive"]])
registry = get_registry()
summary = run_matrix(load_matrix({matrix!r}, registry), Settings(out={out!r}), executor="ray",
                     ray_address={address!r}, show_progress=False)
print(json.dumps({{"counts": dict(summary.counts), "unfinished": summary.unfinished, "nodes": nodes}}))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the Ray head did not open port {port} in {seconds} s")


@pytest.fixture
def two_nodes(tmp_path_factory, monkeypatch):
    """A head and a worker node, each a foreground ``ray start --block`` in its own process group,
    stopped by signalling those groups only (never ``ray stop``, which would stop every Ray on the
    machine). The cluster uses a fresh token for authentication."""
    ray_cli = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    if not Path(ray_cli).exists():
        pytest.skip("the `ray` command is not installed")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    temp = tmp_path_factory.mktemp("r", numbered=True)  # Ray's socket paths must stay short
    port = _free_port()
    common = ["--num-cpus=1", "--disable-usage-stats", "--block"]
    nodes = []

    def start(*args):
        nodes.append(subprocess.Popen([ray_cli, "start", *args, *common], start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    try:
        start("--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false")
        _wait_for_port(port, 120)
        start(f"--address=127.0.0.1:{port}")  # the driver waits for it to join
        yield f"127.0.0.1:{port}"
    finally:
        for node in reversed(nodes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGTERM)
            try:
                node.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)


@pytest.mark.slow  # two Ray nodes
def test_two_node_cluster_runs_without_touching_out_and_crafts_each_poison_once(tmp_path, registry, two_nodes):
    (tmp_path / "m.toml").write_text(MATRIX)
    matrix = load_matrix(str(tmp_path / "m.toml"), registry)
    local = run_matrix(matrix, Settings(out=str(tmp_path / "local")), show_progress=False)

    out = tmp_path / "out"
    out.mkdir()
    violations = tmp_path / "violations.log"
    # The driver runs in its own process: Ray reads the cluster's token from the environment when it
    # is imported, and this test process must not stay connected to the cluster.
    driver = DRIVER.format(tests=str(Path(__file__).parent), address=two_nodes, matrix=str(tmp_path / "m.toml"),
                           out=str(out), barred=str(out.resolve()), violations=str(violations))
    done = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])

    assert not violations.exists(), violations.read_text()
    assert summary == {"counts": dict(local.counts), "unfinished": 0, "nodes": 2}
    rows = ResultsStore(out).rows()
    assert all(r["status"] == "ok" for r in rows), [r["reason"] for r in rows if r["status"] != "ok"]
    expected = {r["cell_id"]: numbers(r) for r in ResultsStore(tmp_path / "local").rows()}
    assert {r["cell_id"]: numbers(r) for r in rows} == expected
    hosts = {r["manifest"].get("ray_node") for r in rows}
    assert len(hosts) == 2, hosts  # both nodes computed cells
    for attack in ("uniform-noise", "random-pixels"):  # each poison crafted once, then fetched
        crafted = [r for r in rows if r["attack"].startswith(attack)]
        assert len(crafted) == 2 and sum(not r["metrics"]["cache_hit_poison"] for r in crafted) == 1
    for defense in ("erm", "weight-decay"):  # one clean training per defense, shared by 3 cells
        shared = [r for r in rows if r["defense"] == defense and r["attack"].split(":")[0] in ("clean", "none", "fgsm")]
        assert sum(not r["metrics"]["cache_hit_model"] for r in shared) == 1
    assert any((out / "cache" / "poison").glob("*.safetensors"))  # the depot persisted them under --out
