"""Studies declared as data: the file is checked, the runner skips finished sets, resumes a
stopped one, and writes the rows (commands, set metadata, scores) with the machine."""
from __future__ import annotations

import json

import pytest

from synthset.cli import main
from synthset.study import load_study


def _write(tmp_path, text: str):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def test_bad_study_files_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        load_study(_write(tmp_path, 'name = "a"\nout = "o"\nbogus = 1\n[[runs]]\nname = "x"\n'))
    with pytest.raises(ValueError, match="two runs are named"):
        load_study(_write(tmp_path, 'name = "a"\nout = "o"\n[[runs]]\nname = "x"\n[[runs]]\nname = "x"\n'))
    with pytest.raises(ValueError, match="no earlier run makes"):
        load_study(_write(tmp_path, 'name = "a"\nout = "o"\n[[runs]]\nname = "x"\nset = "y"\n'))
    with pytest.raises(ValueError, match="no \\[\\[runs\\]\\]"):
        load_study(_write(tmp_path, 'name = "a"\nout = "o"\n'))


def test_flags_join_and_commands_are_what_a_user_types(tmp_path):
    s = load_study(_write(tmp_path, 'name = "a"\nout = "o"\ndistill = "--method dm --ipc 1"\n'
                                    'evaluate = "--runs 1"\n[[runs]]\nname = "x"\n'
                                    'distill = "--iterations 2"\n[[runs]]\nname = "y"\nset = "x"\n'
                                    'evaluate = "--models LeNet"\n'), root=tmp_path)
    x, y = s.runs
    assert s.distill_argv(x, resume=False) == ["distill", "--method", "dm", "--ipc", "1",
                                               "--iterations", "2", "--out", str(tmp_path / "o" / "x")]
    assert "--resume" in s.distill_argv(x, resume=True)
    assert y.distill == () and s.evaluate_argv(y) == [
        "evaluate", str(tmp_path / "o" / "x"), "--runs", "1", "--models", "LeNet",
        "--out", str(tmp_path / "o" / "y")]


def test_study_runs_skips_what_is_done_and_writes_rows(tmp_path, shared_root, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = _write(tmp_path, f'name = "tiny"\nout = "res"\n'
                         f'distill = "--method random --ipc 1 --data-root {shared_root} --holdout-val"\n'
                         f'evaluate = "--split val --runs 1 --epochs 1 --precision fp32"\n'
                         f'[[runs]]\nname = "r"\nnote = "random real"\n')
    assert main(["study", str(f)]) == 0
    body = json.loads((tmp_path / "res" / "study.json").read_text())
    row = body["rows"][0]
    assert row["name"] == "r" and row["note"] == "random real"
    assert row["set"]["val_split"]["held_out"] is True and row["set"]["val_split"]["size"] == 5000
    assert row["evaluation"]["split"] == "val"
    assert len(row["evaluation"]["models"]["ConvNet"]["runs"]) == 1
    assert body["machine"]["cpu"] and "synthset study" in body["command"]
    assert "| r | random real |" in (tmp_path / "res" / "study.md").read_text()
    capsys.readouterr()
    assert main(["study", str(f)]) == 0  # finished: neither distilled nor evaluated again
    out = capsys.readouterr().out
    assert "synthset distill" not in out and "synthset evaluate" not in out


def test_only_and_dry_run(tmp_path, capsys):
    f = _write(tmp_path, f'name = "a"\nout = "{tmp_path / "o"}"\ndistill = "--method random"\n'
                         '[[runs]]\nname = "x"\n[[runs]]\nname = "y"\n')
    assert main(["study", str(f), "--only", "y", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[a/y] synthset distill" in out and "[a/x]" not in out  # printed, not run
    assert not (tmp_path / "o").exists()
    assert main(["study", str(f), "--only", "y,z"]) == 2
    assert "--only names z" in capsys.readouterr().err  # an unknown run is named, with the known


def test_a_make_only_row_and_a_finished_evaluation_are_skipped_without_the_set(tmp_path):
    from synthset.cli import eval_config
    from synthset.study import evaluated as done_by

    def evaluated(study, run):
        return done_by(study, run, eval_config)

    s = load_study(_write(tmp_path, 'name = "a"\nout = "o"\nevaluate = "--runs 2 --epochs 10"\n'
                                    '[[runs]]\nname = "x"\nevaluate = false\n'
                                    '[[runs]]\nname = "y"\nset = "x"\nevaluate = "--precision fp32"\n'),
                   root=tmp_path)
    x, y = s.runs
    assert x.evaluate is None and evaluated(s, x)
    with pytest.raises(ValueError, match="cannot say evaluate = false"):
        load_study(_write(tmp_path, 'name = "a"\nout = "o"\n[[runs]]\nname = "x"\n'
                                    '[[runs]]\nname = "y"\nset = "x"\nevaluate = false\n'))
    assert not evaluated(s, y)  # nothing on file yet
    (tmp_path / "o" / "y").mkdir(parents=True)
    result = {"models": {"ConvNet": {"runs": [90.0, 91.0], "epochs": 10,
                                     "precision": {"precision": "bf16"}}}}
    (tmp_path / "o" / "y" / "eval.json").write_text(json.dumps(result))
    assert not evaluated(s, y)  # bf16 on file, fp32 asked: not the same evaluation
    result["models"]["ConvNet"]["precision"]["precision"] = "fp32"
    (tmp_path / "o" / "y" / "eval.json").write_text(json.dumps(result))
    assert evaluated(s, y)  # no set tensors needed: the runs on file answer it
    result["models"]["ConvNet"]["runs"] = [90.0]
    (tmp_path / "o" / "y" / "eval.json").write_text(json.dumps(result))
    assert not evaluated(s, y)  # fewer runs than asked


def _val_study(tmp_path, scores: dict[str, tuple[float, float]]):
    """A validation study whose rows' eval-val.json files hold the given (accuracy, balanced)."""
    runs = "".join(f'[[runs]]\nname = "{n}"\ndistill = "--iterations {i + 1}"\n'
                   for i, n in enumerate(scores))
    f = tmp_path / "val.toml"
    f.write_text(f'name = "v"\nout = "{tmp_path / "val"}"\n'
                 f'distill = "--method dm --holdout-val --val-seed 3"\n'
                 f'evaluate = "--split val"\n{runs}')
    for name, (acc, bal) in scores.items():
        d = tmp_path / "val" / name
        d.mkdir(parents=True)
        (d / "eval-val.json").write_text(json.dumps({"split": "val", "models": {"ConvNet": {
            "mean": acc, "std": 0.0, "runs": [acc], "epochs": 1,
            "balanced_accuracy": {"mean": bal}}}}))
    return f


def test_a_final_row_takes_the_settings_that_scored_best_on_val(tmp_path):
    _val_study(tmp_path, {"a": (90.0, 70.0), "b": (80.0, 75.0), "c": (90.0, 60.0)})
    final = _write(tmp_path, 'name = "f"\nout = "o"\ndistill = "--ipc 10"\n[[runs]]\nname = "acc"\n'
                             'distill = "--seed 1"\npick = { study = "val.toml", runs = ["a", "b", "c"] }\n'
                             '[[runs]]\nname = "bal"\n'
                             'pick = { study = "val.toml", runs = ["a", "b", "c"], by = "balanced" }\n')
    s = load_study(final, root=tmp_path)
    acc, bal = s.runs
    # a and c tie on accuracy: the first listed wins; the holdout and its seed are dropped
    assert s.distill_argv(acc, resume=False) == [
        "distill", "--method", "dm", "--iterations", "1", "--ipc", "10", "--seed", "1",
        "--out", str(tmp_path / "o" / "acc")]
    assert "--iterations" in (argv := s.distill_argv(bal, resume=False)) and argv[argv.index("--iterations") + 1] == "2"
    from synthset.study import row
    r = row(s, bal)
    assert r["picked"]["chosen"] == "b" and r["picked"]["val_scores"] == {"a": 70.0, "b": 75.0, "c": 60.0}


def test_picking_from_an_unscored_or_unknown_run_says_what_to_run(tmp_path):
    _val_study(tmp_path, {"a": (90.0, 70.0)})
    (tmp_path / "val.toml").write_text((tmp_path / "val.toml").read_text() + '[[runs]]\nname = "late"\n')
    s = load_study(_write(tmp_path, 'name = "f"\nout = "o"\n[[runs]]\nname = "x"\n'
                                    'pick = { study = "val.toml", runs = ["a", "late"] }\n'), root=tmp_path)
    with pytest.raises(ValueError, match="'late' .* no validation score yet: run `synthset study"):
        s.distill_argv(s.runs[0], resume=False)
    from synthset.study import row
    assert "no validation score" in row(s, s.runs[0])["picked"]["pending"]
    s = load_study(_write(tmp_path, 'name = "f"\nout = "o"\n[[runs]]\nname = "x"\n'
                                    'pick = { study = "val.toml", runs = ["zz"] }\n'), root=tmp_path)
    with pytest.raises(ValueError, match="no run 'zz'"):
        s.distill_argv(s.runs[0], resume=False)
    with pytest.raises(ValueError, match="pick by 'loss'"):
        load_study(_write(tmp_path, 'name = "f"\nout = "o"\n[[runs]]\nname = "x"\n'
                                    'pick = { study = "val.toml", runs = ["a"], by = "loss" }\n'))


def test_report_only_writes_the_rows_and_an_evaluation_under_way(tmp_path, capsys):
    f = _write(tmp_path, f'name = "a"\nout = "{tmp_path / "o"}"\ndistill = "--method random"\n'
                         'evaluate = "--runs 5 --epochs 1000"\n[[runs]]\nname = "x"\n')
    (tmp_path / "o" / "x").mkdir(parents=True)
    runs = [{"model": "ConvNet", "run": i, "accuracy": a, "epochs": 1000} for i, a in enumerate((98.0, 99.0))]
    (tmp_path / "o" / "x" / "eval_runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    assert main(["study", str(f), "--report-only"]) == 0
    assert "synthset distill" not in capsys.readouterr().out  # nothing run
    body = json.loads((tmp_path / "o" / "study.json").read_text())
    assert body["rows"][0]["partial"] == {"ConvNet": {"runs": [98.0, 99.0], "epochs": 1000}}
    assert "ConvNet 98.50 (2 of 5 runs x 1000 epochs so far)" in (tmp_path / "o" / "study.md").read_text()


def test_the_table_names_each_rows_protocol_only_when_rows_differ():
    from synthset.study import table

    def body(*protocols):
        return {"study": "s", "rows": [
            {"name": f"r{i}", "evaluation": {"split": "val", "models": {"ConvNet": {
                "mean": 96.5, "std": 0.0, "runs": [96.5] * n, "epochs": e}}}}
            for i, (n, e) in enumerate(protocols)]}

    same = table(body((1, 300), (1, 300))).markdown()
    assert "accuracy % on val (1 x 300 epochs)" in same and "96.50 ± 0.00 (" not in same
    mixed = table(body((1, 300), (2, 1000))).markdown()
    assert "accuracy % on val (runs x epochs)" in mixed
    assert "ConvNet 96.50 ± 0.00 (1 x 300)" in mixed and "ConvNet 96.50 ± 0.00 (2 x 1000)" in mixed


STUDIES = sorted((__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks" / "studies").glob("*.toml"))


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_every_shipped_study_declares_commands_the_cli_accepts(path):
    # a misspelt flag in a study file would otherwise surface only hours into a queue
    import dataclasses

    from synthset.cli import _method_of, apply_recipe, build_parser, eval_config, options_from
    from synthset.config import CoresetConfig, DataConfig, DistillConfig, EngineConfig
    from synthset.methods import METHODS
    study = load_study(path)
    for run in study.runs:
        candidates = [()]
        if run.pick:  # each candidate's flags (without the holdout), as choose() would give them
            val = {r.name: r for r in load_study(run.pick.study).runs}
            assert set(run.pick.runs) <= set(val), run.name
            candidates = [tuple(f for f in val[c].distill if f != "--holdout-val") for c in run.pick.runs]
        if run.distill or run.pick:
            for picked in candidates:
                argv = study.distill_argv(run, resume=False, picked=picked)
                args = build_parser(_method_of(argv)).parse_args(argv)
                if args.recipe:
                    apply_recipe(args, argv)
                method = METHODS.get(args.method)  # the options' own checks (ValueError)
                DistillConfig(method=method.name, ipc=args.ipc, seed=args.seed,
                              coreset=options_from(args, CoresetConfig, "coreset"),
                              engine=options_from(args, EngineConfig, "engine"),
                              options=dataclasses.asdict(options_from(args, method.Options, "method")))
                options_from(args, DataConfig, "data")
        if run.evaluate is not None:
            eval_config(study.evaluate_argv(run))
