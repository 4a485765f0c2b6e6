"""Published leaderboards: rows as data, byte-identical re-renders, untrusted input refused, rankings
that break ties, and the browsable page driven in a real headless browser."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchlab import published
from benchlab.cli import main
from benchlab.html_page import PAGE, reliability_flags
from benchlab.leaderboard import table
from benchlab.metrics import TableMetrics
from benchlab.store import rows_frame

CODE = {role: {"class": f"benchlab_{plugin}.module.Thing", "distribution": "benchlab", "source": "abc",
               "version": "1"}
        for role, plugin in (("dataset", "core"), ("attack", "baselines"), ("defense", "baselines"),
                             ("victim", "lwa"))}


def _row(attack, defense, victim, seed, robust, clean, threat="evasion", **metrics):
    cell_id = f"{attack}-{defense}-{victim}-{seed}"
    return {"cell_id": cell_id, "matrix": "t", "block": "b", "dataset": "digits", "threat": threat,
            "attack": attack, "defense": defense, "victim": victim, "seed": seed, "status": "ok",
            "metrics": {"robust_acc": robust, "test_acc": clean, **metrics}, "reason": None,
            "params": {"code": CODE, "recipe": {}}, "manifest": {"git_commit": "abc", "device": "cpu"},
            "started_at": 1.0 + len(cell_id) / 100 + seed, "finished_at": 2.0 + seed, "duration_s": 1.0,
            "code_version": "v1"}


def _rows(seeds=(0,)):
    rows = []
    for seed in seeds:
        # Every worst case is 0: the mean over attacks, then clean accuracy, must rank.
        rows += [_row("pgd", "augment", "mlp", seed, 0.0, 0.75), _row("fgsm", "augment", "mlp", seed, 0.2, 0.75),
                 _row("pgd", "erm", "mlp", seed, 0.0, 0.90), _row("fgsm", "erm", "mlp", seed, 0.2, 0.90),
                 _row("pgd", "vat", "mlp", seed, 0.0, 0.80), _row("fgsm", "vat", "mlp", seed, 0.4, 0.80,
                                                                  reliability_flags=["gradient masking"]),
                 _row("pgd", "erm", "cnn", seed, 0.1, 0.95)]
    return rows


def _publish(dest, rows, title="t"):
    published.write(dest, rows, title=title, blocks=None, installed={r["cell_id"] for r in rows},
                    metrics=TableMetrics(), git_commit="abc", out=None)
    return published.render(dest, html=True)


def test_ties_break_on_mean_over_attacks_then_clean_accuracy():
    result = table(rows_frame(_rows()), "robust_acc")
    # erm/cnn met one attack only: below every row evaluated under both.
    assert list(result.index) == [("vat", "mlp"), ("erm", "mlp"), ("augment", "mlp"), ("erm", "cnn")]


def test_seeds_and_spread_only_with_more_than_one_seed(tmp_path):
    one = _publish(tmp_path / "one", _rows())
    text = (one / "digits-evasion.md").read_text()
    assert "n = 1" in text and "±" not in text and "seeds" not in text
    many = _publish(tmp_path / "many", [{**r, "metrics": {**r["metrics"], "robust_acc": r["metrics"]["robust_acc"]
                                                            + 0.01 * r["seed"]}} for r in _rows((0, 1, 2))])
    text = (many / "digits-evasion.md").read_text()
    assert "mean ± std over n = 3 seeds" in text and "±" in text.split("\n", 2)[2]


def test_a_partial_run_says_which_blocks_are_incomplete(tmp_path):
    rows = _rows()
    cells = set(rows_frame(rows)["cell"])
    published.write(tmp_path / "full", rows, title="t", blocks={"b": cells}, installed={r["cell_id"] for r in rows},
                    metrics=TableMetrics(), git_commit="abc", out=None)
    assert "Incomplete" not in (published.render(tmp_path / "full") / "README.md").read_text()
    published.write(tmp_path / "part", rows, title="t", blocks={"b": cells | {"not-run-yet"}},
                    installed={r["cell_id"] for r in rows}, metrics=TableMetrics(), git_commit="abc", out=None)
    text = (published.render(tmp_path / "part") / "README.md").read_text()
    assert f"- `b`: {len(cells)} of {len(cells) + 1} cells recorded" in text


def test_from_rerenders_byte_identical_without_running(tmp_path):
    first = _publish(tmp_path / "board", _rows((0, 1)))
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    assert {"rows.jsonl", published.META, PAGE, "digits-evasion.md", "digits-evasion.csv",
            "digits-evasion.png"} <= set(before)
    runner = CliRunner()
    again = runner.invoke(main, ["leaderboard", "--from", str(first), "--html"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    elsewhere = runner.invoke(main, ["leaderboard", "--from", str(first), "--to", str(tmp_path / "copy"), "--html"])
    assert elsewhere.exit_code == 0, elsewhere.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "copy").iterdir()} == before
    lines = (first / "rows.jsonl").read_text().splitlines()
    assert all(json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False) == line for line in lines)


def test_published_rows_name_no_machine_paths(tmp_path):
    rows = _rows()
    rows[0]["reason"] = f"Traceback: {tmp_path / 'run' / 'x.pt'} and {Path(published.__file__).resolve()}"
    published.write(tmp_path / "board", rows, title="t", blocks=None, installed=set(), metrics=TableMetrics(),
                    git_commit=None, out=tmp_path / "run")
    text = (tmp_path / "board" / "rows.jsonl").read_text()
    assert str(tmp_path) not in text and "<run>/x.pt" in text and "<checkout>/benchlab/published.py" in text


@pytest.mark.parametrize("change, message", [
    (lambda row: row.update(threat="../../evil"), "threat '../../evil' is not one of"),
    (lambda row: row.update(seed="0"), "field 'seed' has the wrong type"),
    (lambda row: row.update(seed=True), "field 'seed' has the wrong type"),
    (lambda row: row.update(extra=1), "unknown fields ['extra']"),
    (lambda row: row.pop("attack"), "missing field 'attack'"),
    (lambda row: row["metrics"].update(robust_acc={"x": [{"y": 1}]}), "metric 'robust_acc' must be"),
])
def test_malformed_rows_are_refused_with_one_line(tmp_path, change, message):
    board = tmp_path / "board"
    _publish(board, _rows())
    lines = (board / "rows.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    change(row)
    (board / "rows.jsonl").write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    result = CliRunner().invoke(main, ["leaderboard", "--from", str(board)])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "evil-evasion.csv").exists() and not Path("evil-evasion.csv").exists()


def test_not_json_and_unknown_format_are_refused(tmp_path):
    board = tmp_path / "board"
    _publish(board, _rows())
    meta = json.loads((board / published.META).read_text())
    (board / published.META).write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(published.PublishedError, match="format 99"):
        published.load(board)
    (board / published.META).write_text("import os")
    with pytest.raises(published.PublishedError, match="not JSON"):
        published.load(board)
    with pytest.raises(published.PublishedError, match="not a published leaderboard"):
        published.load(tmp_path)


def test_run_renders_under_out_unless_published(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    matrix = tmp_path / "m.toml"
    matrix.write_text('name = "tiny"\n[recipe]\nepochs = 1\n[[block]]\ndatasets = ["digits:per_class=20"]\n'
                      'attacks = ["none"]\ndefenses = ["erm"]\nvictims = ["mlp"]\n')
    runner = CliRunner()
    result = runner.invoke(main, ["run", "--matrix", str(matrix), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert published.is_published(tmp_path / "run" / "leaderboards" / "tiny")
    assert not (tmp_path / "leaderboards").exists()
    result = runner.invoke(main, ["run", "--matrix", str(matrix), "--out", str(tmp_path / "run"), "--publish"])
    assert result.exit_code == 0, result.output
    assert published.is_published(tmp_path / "leaderboards" / "tiny")
    assert (tmp_path / "leaderboards" / "tiny" / PAGE).exists()


def test_a_run_adopts_the_matching_finished_cells_of_a_published_folder(tmp_path):
    matrix = tmp_path / "m.toml"
    matrix.write_text('name = "tiny"\n[recipe]\nepochs = 1\n[[block]]\ndatasets = ["digits:per_class=20"]\n'
                      'attacks = ["none", "fgsm"]\ndefenses = ["erm"]\nvictims = ["mlp"]\n')
    board = tmp_path / "board"
    runner = CliRunner()
    first = runner.invoke(main, ["run", "--matrix", str(matrix), "--out", str(tmp_path / "a"),
                                 "--leaderboard-to", str(board)])
    assert first.exit_code == 0, first.output
    # A cell no matrix computes (its id matches nothing) and a tampered identity are left alone.
    rows = [json.loads(line) for line in (board / "rows.jsonl").read_text().splitlines()]
    forged = {**rows[0], "cell_id": "0" * 16, "metrics": {"robust_acc": 1.0}}
    (board / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*rows, forged]))
    dry = runner.invoke(main, ["run", "--matrix", str(matrix), "--out", str(tmp_path / "b"), "--adopt-from",
                               str(board), "--dry-run"])
    assert dry.exit_code == 0 and dry.output.count("adopted") == 2, dry.output
    again = runner.invoke(main, ["run", "--matrix", str(matrix), "--out", str(tmp_path / "b"), "--adopt-from",
                                 str(board), "--leaderboard-to", str(tmp_path / "board-b")])
    assert again.exit_code == 0, again.output
    assert "2 cells adopted" in again.output and "2 already done, ran 0" in again.output
    assert (tmp_path / "board-b" / "rows.jsonl").read_text().splitlines() == \
        (board / "rows.jsonl").read_text().splitlines()[:2]
    # A malformed folder is one line, before any work.
    (board / "rows.jsonl").write_text("[1]\n")
    broken = runner.invoke(main, ["run", "--matrix", str(matrix), "--out", str(tmp_path / "c"), "--adopt-from",
                                  str(board)])
    assert broken.exit_code == 1 and "a row must be a JSON object" in broken.output
    assert "Traceback" not in broken.output


COMMITTED = Path(__file__).resolve().parent.parent / "leaderboards"


@pytest.mark.parametrize("name", sorted(p.name for p in COMMITTED.iterdir() if p.is_dir()) if COMMITTED.is_dir() else
                         ["smoke"])
def test_committed_leaderboards_rerender_byte_identical(tmp_path, name):
    committed = COMMITTED / name
    if not published.is_published(committed):
        pytest.skip(f"no published {name} leaderboard in this checkout")
    copy = tmp_path / name
    shutil.copytree(committed, copy)
    published.render(copy, html=(committed / PAGE).exists())
    for path in committed.iterdir():
        if path.suffix in (".md", ".csv", ".json", ".jsonl", ".html"):
            assert (copy / path.name).read_bytes() == path.read_bytes(), path.name


def test_reliability_flags_are_read_generically():
    assert reliability_flags({"reliability_flags": ["a", "b"], "robust_acc": 0.1}) == ["a", "b"]
    assert reliability_flags({"reliability": {"flags": ["c"]}}) == ["c"]
    assert reliability_flags({"reliability_flags": []}) == []


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the `test` extra)")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("no headless browser: install chromium and chromium-driver (apt-get install -y chromium "
                    "chromium-driver) to run the page test")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_page_sorts_filters_and_shows_manifests_in_a_headless_browser(tmp_path):
    board = _publish(tmp_path / "board", _rows((0, 1)))
    browser = _browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def visible_rows():
        return [(row.get_attribute("data-defense"), row.get_attribute("data-victim"))
                for row in browser.find_elements(By.CSS_SELECTOR, "table.board tbody tr") if row.is_displayed()]

    try:
        browser.get((board / PAGE).as_uri())
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        assert visible_rows() == [("vat", "mlp"), ("erm", "mlp"), ("augment", "mlp"), ("erm", "cnn")]
        headers = {h.text.strip(): h for h in browser.find_elements(By.CSS_SELECTOR, "table.board th")}
        headers["fgsm"].click()  # ascending: blank (erm/cnn ran no fgsm) last
        assert visible_rows() == [("erm", "mlp"), ("augment", "mlp"), ("vat", "mlp"), ("erm", "cnn")]
        headers["fgsm"].click()
        assert visible_rows()[0] == ("vat", "mlp") and visible_rows()[-1] == ("erm", "cnn")
        Select(browser.find_element(By.CSS_SELECTOR, "select[data-filter=victim]")).select_by_value("cnn")
        assert visible_rows() == [("erm", "cnn")]
        Select(browser.find_element(By.CSS_SELECTOR, "select[data-filter=victim]")).select_by_value("")
        Select(browser.find_element(By.CSS_SELECTOR, "select[data-filter=attack]")).select_by_value("fgsm")
        assert ("erm", "cnn") not in visible_rows() and len(visible_rows()) == 3
        Select(browser.find_element(By.CSS_SELECTOR, "select[data-filter=plugin]")).select_by_value("lwa")
        assert len(visible_rows()) == 3
        flag = browser.find_element(By.CSS_SELECTOR, ".flag")
        assert flag.get_attribute("title") == "gradient masking"
        summary = next(s for s in browser.find_elements(By.CSS_SELECTOR, "details[data-cells] summary")
                       if s.is_displayed())
        summary.click()  # the JSON is filled in on the (asynchronous) toggle event
        WebDriverWait(browser, 10).until(
            lambda b: b.execute_script("const p = document.querySelector('details[open] pre');"
                                       "return p && p.textContent.length > 0;"))
        shown = json.loads(browser.execute_script("return document.querySelector('details[open] pre').textContent"))
        assert {cell["manifest"]["device"] for cell in shown} == {"cpu"} and len(shown) == 4
        assert browser.find_element(By.CSS_SELECTOR, ".plots img").get_attribute("naturalWidth") != "0"
        browser.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 10_000
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        browser.quit()
