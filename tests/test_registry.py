import pytest

from synthset.registry import Registry


def test_register_get_names_and_case_fallback():
    r = Registry("thing")
    r.add("Alpha", 1)

    @r.register("beta")
    def b():
        return 2

    assert r.get("Alpha") == 1 and r.get("alpha") == 1 and r.get("beta") is b
    assert r.names() == ["Alpha", "beta"]
    assert r.canonical("ALPHA") == "Alpha"


def test_duplicate_and_unknown_names_raise_with_choices():
    r = Registry("thing")
    r.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        r.add("a", 2)
    with pytest.raises(ValueError, match=r"unknown thing 'zzz'; choose one of: a"):
        r.get("zzz")
