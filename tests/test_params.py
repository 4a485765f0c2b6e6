import pytest

from benchlab.params import Param, SpecError, format_spec, parse_spec, resolve_params

DECLARED = (
    Param("norm", str, "linf", choices=("l2", "linf")),
    Param("eps", float, None, low=0.0),
    Param("steps", int, 10, low=1, high=1000),
    Param("random_start", bool, True),
)


def test_parse_spec_splits_name_positional_and_options():
    assert parse_spec("PGD:norm=l2,eps=1.5") == parse_spec("pgd: norm=l2 , eps=1.5")
    spec = parse_spec("timm:resnet18,drop_rate=0.1")
    assert spec.name == "timm" and spec.positional == ("resnet18",) and spec.options == (("drop_rate", "0.1"),)


def test_positional_after_keyword_is_rejected():
    with pytest.raises(SpecError, match="positional value 'b' must come before"):
        parse_spec("x:a=1,b")


def test_resolve_fills_defaults_and_converts_types():
    values = resolve_params("pgd", DECLARED, parse_spec("pgd:eps=0.5,steps=3,random-start=false"))
    assert values == {"norm": "linf", "eps": 0.5, "steps": 3, "random_start": False}


@pytest.mark.parametrize("spec, message", [
    ("pgd:nrom=l2", "unknown parameter 'nrom'; did you mean 'norm'"),
    ("pgd:norm=l3", "norm='l3' is not allowed; choose one of l2, linf"),
    ("pgd:steps=0", "steps=0 is below the minimum 1"),
    ("pgd:steps=2.5", "steps='2.5' is not a valid int"),
    ("pgd:eps=abc", "eps='abc' is not a valid float"),
    ("pgd:random_start=maybe", "not a boolean"),
    ("pgd:a,b,c,d,e", "too many positional values"),
])
def test_validation_errors_name_the_problem_and_the_choices(spec, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        resolve_params("pgd", DECLARED, parse_spec(spec))


def test_required_parameter_is_enforced():
    with pytest.raises(SpecError, match="parameter 'model' is required"):
        resolve_params("timm", (Param("model", str, required=True),), parse_spec("timm"))


def test_format_spec_is_canonical():
    values = resolve_params("pgd", DECLARED, parse_spec("pgd:steps=10,eps=0.30,norm=l2"))
    assert format_spec("pgd", DECLARED, values) == "pgd:norm=l2,eps=0.3"
    assert format_spec("pgd", DECLARED, resolve_params("pgd", DECLARED, parse_spec("pgd"))) == "pgd"
