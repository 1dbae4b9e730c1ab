"""Shipped recipes: valid settings, options on the command line override them, and each
recipe's measured figures are those of the run directory it cites."""
import json
from pathlib import Path

import pytest

from synthset.cli import apply_recipe, build_parser, main
from synthset.config import legacy_distill
from synthset.methods import METHODS
from synthset.recipes import recipe, recipes

REPO = Path(__file__).resolve().parents[1]


def test_every_recipe_builds_valid_configs_and_maps_to_flags():
    assert {"mnist-dm-fast", "dm-paper"} <= set(recipes())
    for name, r in recipes().items():
        data, cfg = r.configs(data={} if "dataset" in r.data else {"name": "mnist"})
        assert cfg.recipe == f"{name}@{r.version}" and METHODS.get(cfg.method)
        METHODS.get(cfg.method).options(cfg.options)
        args = build_parser(cfg.method).parse_args(["distill", "--out", "x"])
        for dest in r.settings():
            assert hasattr(args, dest), (name, dest)


@pytest.mark.parametrize("name", sorted(recipes()))
def test_measured_figures_are_those_of_the_cited_run(name):
    r = recipe(name)
    m = r.measured
    run = REPO / m["source"]
    if not (run / "eval.json").exists():
        pytest.skip(f"{m['source']} is not in this checkout")
    ev = json.loads((run / "eval.json").read_text())["models"][m["model"]]
    assert round(ev["mean"], 2) == pytest.approx(m["accuracy"], abs=0.006)
    assert round(ev["std"], 2) == pytest.approx(m["std"], abs=0.006)
    assert (len(ev["runs"]), ev["epochs"]) == (m["runs"], m["epochs"])
    meta = json.loads((run / "synthetic.json").read_text())["metadata"]
    assert abs(meta["distill_seconds"] - m["distill_seconds"]) < 1
    setup = meta.get("setup") or {}
    cached = (setup.get("experts") or {}).get("cached", 0)
    served = setup.get("setup_seconds", 0) * cached / setup["experts"]["count"] if cached else 0
    assert abs(m.get("cached_setup_seconds", 0) - served) < 1  # experts' time a cache served
    for flag in meta.get("machine", {}).get("cpu", {}).get("flags", []):
        assert flag in m["machine"], flag  # the machine named is the one the run recorded
    # the recipe's settings are the ones the run recorded
    made = legacy_distill(meta["distill"])
    for key, value in r.distill.items():
        assert made[key] == value, key
    assert meta["iterations"] == m.get("iterations_done", r.engine["iterations"])
    for key, value in r.engine.items():
        if key != "iterations":  # None in an older config: the method's default, recorded resolved
            got = made["engine"].get(key)
            got = got if got is not None else meta.get(
                key, getattr(METHODS.get(made["method"]), f"default_{key}", None))
            assert got == value, key
    for key, value in r.coreset.items():
        assert made["coreset"][key] == value, key
    data = meta.get("data", {"name": json.loads((run / "synthetic.json").read_text())["dataset"]["name"]})
    for key, value in r.data.items():
        if key == "image_size" and "image_size" not in data:
            continue
        assert data["name" if key == "dataset" else key] == value, key


def _args(argv):
    args = build_parser(recipe("mnist-dm-fast").distill["method"]).parse_args(argv)
    apply_recipe(args, argv)
    return args


def test_command_line_options_override_the_recipe(capsys):
    args = _args(["distill", "--recipe", "mnist-dm-fast", "--out", "x"])
    assert (args.method, args.ipc, getattr(args, "engine.iterations"), getattr(args, "engine.compile"),
            getattr(args, "coreset.features"), getattr(args, "data.name")) == (
        "dm", 10, 200, True, "pixels", "mnist")
    assert args.recipe == "mnist-dm-fast@1"
    args = _args(["distill", "--recipe", "mnist-dm-fast", "--iterations", "7", "--no-compile",
                  "--ipc", "3", "--out", "x"])
    assert (getattr(args, "engine.iterations"), getattr(args, "engine.compile"), args.ipc) == (7, False, 3)
    assert getattr(args, "engine.ema") == 0.97  # not given: the recipe's
    assert "overrides ipc, engine.iterations, engine.compile" in capsys.readouterr().out


def test_recipe_errors_name_the_problem(capsys, shared_root):
    assert main(["distill", "--recipe", "nope", "--out", "x"]) == 2
    assert "unknown recipe 'nope'; shipped recipes: " in capsys.readouterr().err
    assert main(["distill", "--recipe", "mnist-dm-fast", "--method", "datadam", "--out", "x"]) == 2
    assert "recipe mnist-dm-fast is for --method dm; drop --method datadam" in capsys.readouterr().err
    assert main(["distill", "--recipe", "mnist-dm-fast@9", "--out", "x"]) == 2
    assert "is at version 1 in this synthset, not 9" in capsys.readouterr().err


def test_a_recipe_run_records_its_name_and_every_value(tmp_path, shared_root):
    run = tmp_path / "r"
    assert main(["distill", "--recipe", "dm-paper", "--ipc", "1", "--iterations", "1",
                 "--batch-real", "4", "--out", str(run), "--device", "cpu"]) == 0
    cfg = json.loads((run / "config.json").read_text())["distill"]
    assert cfg["recipe"] == "dm-paper@1" and cfg["method"] == "dm"
    assert cfg["engine"]["iterations"] == 1 and cfg["engine"]["batch_real"] == 4
    assert cfg["engine"]["lr_img"] == 1.0 and cfg["engine"]["init"] == "real"


def test_recipes_command_lists_and_shows(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert all(r.tag in out for r in recipes().values())
    assert main(["recipes", "mnist-dm-fast"]) == 0
    out = capsys.readouterr().out
    assert "--method dm --ipc 10 --dataset mnist --iterations 200" in out
    assert "synthset evaluate RUN_DIR --runs 1 --epochs 300 --compile" in out


def test_every_measured_recipe_says_where_its_settings_were_chosen():
    """selected_on: val for the recipes whose settings a validation study chose (the rule
    since the validation split exists); older recipes say test, the paper's say paper."""
    for name, r in recipes().items():
        if r.measured:
            assert r.measured["selected_on"] in ("val", "test", "paper"), name
        if name.startswith(("mnist-ipc", "mhist64-ipc")):
            assert r.measured["selected_on"] == "val", name
