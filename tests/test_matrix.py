"""Matrix specs: presets, TOML files, wildcards, sweeps, budgets, compatibility."""

import pytest

from benchlab.matrix import PRESETS, expand_braces, load_matrix
from benchlab.params import SpecError


def _load(tmp_path, registry, text):
    path = tmp_path / "m.toml"
    path.write_text(text)
    return load_matrix(str(path), registry)


def test_brace_sweeps_expand():
    assert expand_braces("uniform-noise:eps={0,0.1,0.3}") == [
        "uniform-noise:eps=0", "uniform-noise:eps=0.1", "uniform-noise:eps=0.3"]
    assert expand_braces("pgd:norm={l2;linf},eps=1") == ["pgd:norm=l2,eps=1", "pgd:norm=linf,eps=1"]


def test_wildcards_excludes_and_sweeps(tmp_path, registry):
    matrix = _load(tmp_path, registry, """
        seeds = 2
        [[block]]
        datasets = ["digits"]
        attacks = ["*noise*", "uniform-noise:eps={0.1,0.2}"]
        exclude_attacks = ["random-noise"]
        defenses = ["erm"]
        victims = ["mlp"]
    """)
    cells = matrix.expand(registry)
    attacks = sorted({c.attack for c in cells})
    # the bare name gets the dataset budget (digits: linf 0.3) filled in
    assert attacks == ["uniform-noise:eps=0.1", "uniform-noise:eps=0.2", "uniform-noise:eps=0.3"]
    assert sorted({c.seed for c in cells}) == [0, 1] and len(cells) == 6


def test_budgets_fill_eps_per_dataset_and_norm(tmp_path, registry):
    matrix = _load(tmp_path, registry, """
        [[block]]
        datasets = ["digits"]
        attacks = ["pgd:norm=l2", "fgsm", "pgd:eps=0.05"]
        defenses = ["erm"]
        victims = ["mlp"]
        [block.budgets.digits]
        l2 = 0.75
    """)
    attacks = {c.attack for c in matrix.expand(registry)}
    assert attacks == {"pgd:norm=l2,eps=0.75", "fgsm:eps=0.3", "pgd:eps=0.05"}


def test_incompatible_cells_are_kept_as_na_with_a_reason(tmp_path, registry):
    matrix = _load(tmp_path, registry, """
        [[block]]
        datasets = ["digits"]
        attacks = ["pgd"]
        defenses = ["erm"]
        victims = ["mlp", "random-forest"]
    """)
    cells = {c.victim: c for c in matrix.expand(registry)}
    assert cells["mlp"].reason is None
    assert "needs gradients" in cells["random-forest"].reason


@pytest.mark.parametrize("text, message", [
    ('[[block]]\ndatasets=["digits"]\nattacks=["pgd"]\ndefenses=["erm"]', "no entries for victims"),
    ('[[block]]\ndatasets=["digits"]\nattacks=["pgd"]\ndefenses=["erm"]\nvictims=["mlp"]\nvictim=["x"]',
     "unknown keys \\['victim'\\] \\('victim': did you mean 'victims'"),
    ('[[blocks]]\ndatasets=["digits"]\nattacks=["pgd"]\ndefenses=["erm"]\nvictims=["mlp"]',
     "'blocks': did you mean 'block'"),
    ('[[block]]\ndatasets=["digits"]\nattacks=["pgx"]\ndefenses=["erm"]\nvictims=["mlp"]', "did you mean 'pgd'"),
    ('[[block]]\ndatasets=["digits"]\nattacks=["zzz*"]\ndefenses=["erm"]\nvictims=["mlp"]', "matches no attacks"),
    ('this is not toml', "m.toml"),
])
def test_bad_matrix_files_fail_clearly(tmp_path, registry, text, message):
    with pytest.raises(SpecError, match=message):
        _load(tmp_path, registry, text).expand(registry)


def test_unknown_matrix_names_the_presets(registry):
    with pytest.raises(SpecError, match="presets: smoke, quick, paper, full"):
        load_matrix("smok", registry)


def test_cell_ids_change_with_anything_that_changes_the_result(tmp_path, registry):
    base = '[[block]]\ndatasets=["digits"]\nattacks=["pgd"]\ndefenses=["erm"]\nvictims=["mlp"]\n'
    ids = set()
    for extra in ["", "seeds=[1]\n", "[block.recipe]\nepochs=3\n", "[block.budgets.digits]\nlinf=0.1\n"]:
        (cell,) = _load(tmp_path, registry, base + extra).expand(registry)
        ids.add(cell.cell_id)
    assert len(ids) == 4


def test_smoke_runs_every_registered_attack_and_defense_at_least_once(registry):
    cells = load_matrix("smoke", registry).expand(registry)
    used_attacks = {c.attack.split(":")[0] for c in cells}
    used_defenses = {c.defense.split(":")[0] for c in cells}
    assert set(registry.names("attacks")) <= used_attacks
    assert set(registry.names("defenses")) <= used_defenses


@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "paper"])
def test_presets_expand(registry, preset):
    cells = load_matrix(preset, registry).expand(registry)
    assert cells and len({c.cell_id for c in cells}) == len(cells)


def test_full_covers_every_registered_combination(registry):
    cells = load_matrix("full", registry).expand(registry)
    for kind, axis in (("attacks", "attack"), ("defenses", "defense"), ("victims", "victim")):
        # Names with a required parameter (timm:<model>, ta:<attack>) need it spelled out in the preset.
        wildcard = {n for n in registry.names(kind) if not any(p.required for p in registry.get(kind, n).params)}
        assert wildcard <= {getattr(c, axis).split(":")[0] for c in cells}
