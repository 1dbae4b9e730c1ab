"""The command line end to end on real MNIST, and the messages users see on bad input."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import folder_data as _folder_data

from synthset.cli import main


def test_distill_evaluate_show_export(tmp_path, shared_root, capsys):
    run = tmp_path / "run"
    assert main(["distill", "--method", "random", "--ipc", "2", "--out", str(run),
                 "--data-root", str(shared_root)]) == 0
    assert main(["evaluate", str(run), "--epochs", "2", "--runs", "1", "--models", "convnet,MLP",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "ConvNet" in out and "MLP" in out
    rep = json.loads((run / "eval.json").read_text())
    assert set(rep["models"]) == {"ConvNet", "MLP"} and rep["models"]["MLP"]["epochs"] == 2
    assert rep["config"]["train"]["dsa"]["strategy"] == "color_crop_cutout_scale_rotate"  # no flip on digits
    assert main(["show", str(run), "--out", str(tmp_path / "g.png")]) == 0 and (tmp_path / "g.png").exists()
    assert main(["export", str(run), "--format", "dcbench", "--out", str(tmp_path / "s.pt")]) == 0


@pytest.mark.parametrize("argv,message", [
    (["distill", "--method", "nope", "--out", "x"], "unknown method 'nope'; choose one of: random, herding, kcenter"),
    (["distill", "--dataset", "cifar", "--out", "x"], "unknown dataset 'cifar'; choose one of: cifar10, cifar100, "),
    (["distill", "--ipc", "7000", "--out", "x"], "--ipc 7000 is larger than a class"),
    (["evaluate", "missing-dir"], "missing-dir does not exist"),
    (["train", "--model", "ResNet99"], "unknown model 'ResNet99'"),
    (["train", "--device", "cuda:0"], "no CUDA GPU is available"),
])
def test_bad_input_messages(argv, message, capsys, shared_root, monkeypatch):
    if "cuda" in " ".join(argv):
        monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_train_full_reference_on_a_folder_dataset(tmp_path, capsys):
    _folder_data(tmp_path / "data", per_class=6, size=16, seed=0)
    assert main(["train", "--dataset", "folder", "--data-path", str(tmp_path / "data"), "--models", "ConvNetD2,MLP",
                 "--epochs", "2", "--out", str(tmp_path / "full"), "--device", "cpu"]) == 0
    rep = json.loads((tmp_path / "full" / "eval.json").read_text())
    m = rep["models"]["ConvNetD2"]
    assert m["epochs"] == 2 and len(m["runs"]) == 1 and "auc" in m  # two classes -> ROC-AUC too
    assert set(rep["models"]) == {"ConvNetD2", "MLP"}  # the full-data cross-architecture row
    assert "full folder training set" in capsys.readouterr().out


def test_train_keeps_finished_runs_and_resumes(tmp_path, capsys):
    """A second `train` with more runs trains only the new run; seeds are the full-data stream."""
    from synthset.evaluate import run_seed
    _folder_data(tmp_path / "data", per_class=4, size=8, seed=1)
    base = ["train", "--dataset", "folder", "--data-path", str(tmp_path / "data"), "--model", "MLP",
            "--epochs", "1", "--out", str(tmp_path / "full"), "--device", "cpu"]
    assert main(base + ["--runs", "1"]) == 0
    first = json.loads((tmp_path / "full" / "eval.json").read_text())["models"]["MLP"]
    assert main(base + ["--runs", "2"]) == 0
    lines = [json.loads(x) for x in (tmp_path / "full" / "eval_runs.jsonl").read_text().splitlines()]
    assert [x["run"] for x in lines] == [0, 1]  # run 0 was not trained again
    rep = json.loads((tmp_path / "full" / "eval.json").read_text())
    m = rep["models"]["MLP"]
    assert m["runs"][0] == first["runs"][0] and len(m["runs"]) == 2
    assert m["seeds"] == [run_seed(0, "MLP", r, "full") for r in range(2)]
    assert rep["config"]["data"]["name"] == "folder" and rep["config"]["train"]["epochs"] == 1


def test_dm_distill_checkpoint_and_resume(tmp_path, shared_root, capsys):
    run = tmp_path / "dm"
    base = ["distill", "--method", "dm", "--ipc", "1", "--batch-real", "8", "--checkpoint-every", "1",
            "--out", str(run), "--data-root", str(shared_root), "--device", "cpu"]
    assert main(base + ["--iterations", "2"]) == 0
    assert json.loads((run / "checkpoint.json").read_text())["iteration"] == 2
    assert main(base + ["--iterations", "3", "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    meta = json.loads((run / "synthetic.json").read_text())["metadata"]
    assert meta["method"] == "dm" and meta["iterations"] == 3 and meta["distill"]["engine"]["batch_real"] == 8


def test_distill_ema_and_cosine_flags_reach_the_saved_config(tmp_path, shared_root, capsys):
    run = tmp_path / "dm-ema"
    assert main(["distill", "--method", "dm", "--ipc", "1", "--batch-real", "8", "--iterations", "2",
                 "--ema", "0.9", "--lr-schedule", "cosine", "--out", str(run),
                 "--data-root", str(shared_root), "--device", "cpu"]) == 0
    match = json.loads((run / "config.json").read_text())["distill"]["engine"]
    assert match["ema"] == 0.9 and match["lr_schedule"] == "cosine"
    assert main(["distill", "--method", "dm", "--lr-schedule", "cosine", "--out", str(tmp_path / "x"),
                 "--data-root", str(shared_root), "--device", "cpu"]) == 2
    assert "give --iterations" in capsys.readouterr().err


def test_distill_factor_flag_saves_a_multi_formation_set(tmp_path, shared_root, capsys):
    run = tmp_path / "dm-f2"
    assert main(["distill", "--method", "dm", "--ipc", "1", "--batch-real", "8", "--iterations", "1",
                 "--factor", "2", "--out", str(run), "--data-root", str(shared_root),
                 "--device", "cpu"]) == 0
    assert json.loads((run / "synthetic.json").read_text())["factor"] == 2
    assert json.loads((run / "config.json").read_text())["distill"]["engine"]["factor"] == 2
    assert main(["distill", "--method", "dm", "--ipc", "1", "--iterations", "1", "--factor", "3",
                 "--out", str(tmp_path / "x"), "--data-root", str(shared_root), "--device", "cpu"]) == 2
    assert "factor 3 must be >= 1 and divide the image size 28x28" in capsys.readouterr().err


def test_datasets_lists_facts(shared_root, capsys):
    assert main(["datasets", "--data-root", str(shared_root)]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    assert "1x28x28, 10 classes (0, 1, 2, 3, 4, ...)" in lines["mnist"]
    assert "3x224x224, 2 classes (HP, SSA)" in lines["mhist"]
    assert "mean/std measured on the training images" in lines["pathmnist"]
    assert out.count("; present under the root") == 2  # MNIST and MHIST are in ../shared/data


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigterm_stops_parallel_training_and_its_workers(tmp_path):
    """`kill` on a `train --workers 2` parent takes the Ctrl-C path (message, exit 130) and
    ends the worker processes instead of leaving them orphaned, training on."""
    _folder_data(tmp_path / "data", per_class=4, size=8, seed=2)
    err_path = tmp_path / "stderr.txt"
    kids: list[int] = []
    with open(err_path, "w") as err_file:  # a file, not a pipe: orphans would hold a pipe open
        proc = subprocess.Popen(
            [sys.executable, "-m", "synthset.cli", "train", "--dataset", "folder", "--data-path",
             str(tmp_path / "data"), "--model", "MLP", "--epochs", "10000000", "--runs", "2",
             "--workers", "2", "--device", "cpu", "--out", str(tmp_path / "full")],
            stdout=subprocess.DEVNULL, stderr=err_file, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(kids) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            kids = _children(proc.pid)
        assert len(kids) >= 2, "the two workers never started"
        time.sleep(3)  # let them import torch and start training
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 20
        while any(_alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [k for k in kids if _alive(k)]
    finally:
        if proc.poll() is None:
            proc.kill()
        for k in kids:  # never leave a failed run's workers behind
            if _alive(k):
                os.kill(k, signal.SIGKILL)
    assert proc.returncode == 130 and "interrupted" in err_path.read_text()
    assert not survivors, "worker processes outlived the parent"


def _commands():
    """(argv that parses, subparser) for every command, and distill once per method."""
    import argparse

    from synthset.cli import build_parser
    from synthset.methods import METHODS
    for method in (None, *(name for name, _ in METHODS.items())):
        ap = build_parser(method)
        sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
        for name, p in sub.choices.items():
            if method is not None and name != "distill":
                continue
            argv = [name] + (["--method", method] if method else [])
            for a in p._actions:
                if not a.option_strings and a.dest != "help":
                    argv += ["x"] if a.nargs in (None, "+") else []
                elif a.required:
                    argv += [a.option_strings[0], "x"]
            yield argv, ap, p


def test_every_cli_option_comes_from_a_dataclass_field_with_its_default():
    """Every flag of every command is generated from a dataclass field (the only hand-written
    arguments are positional paths), and its parsed default is the field's default, except
    the overrides the CLI declares (COMMAND_DEFAULTS). This would have caught --mia-shadows
    (4 in the CLI, 0 in AuditConfig) and any flag written by hand."""
    import dataclasses

    from synthset.cli import COMMAND_DEFAULTS
    checked, commands = 0, set()
    for argv, ap, p in _commands():
        args = vars(ap.parse_args(argv))
        own = COMMAND_DEFAULTS.get(argv[0], {})
        for a in p._actions:
            if not a.option_strings or a.dest == "help" or set(a.option_strings) & set(argv):
                continue
            assert hasattr(a, "field"), f"synthset {argv[0]} {a.option_strings[0]} is hand-written"
            cls, f = a.field
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                assert a.required, (argv[0], a.dest)
                continue
            want = own.get(a.dest, f.default if f.default is not dataclasses.MISSING
                           else f.default_factory())
            assert args[a.dest] == want, (argv[0], a.dest, args[a.dest], want)
            checked += 1
        commands.add(argv[0])
    assert len(commands) == 13 and checked > 150
    # every declared override names a flag that exists
    for command, overrides in COMMAND_DEFAULTS.items():
        parsed = vars(next(ap for argv, ap, _ in _commands() if argv[0] == command)
                      .parse_args(next(argv for argv, _, _ in _commands() if argv[0] == command)))
        assert set(overrides) <= set(parsed), command


def test_boolean_flags_read_as_what_they_do():
    from synthset.cli import build_parser
    text = build_parser().format_help()
    helps = build_parser()._subparsers._group_actions[0].choices["distill"].format_help()
    assert "off: download missing data" not in helps
    assert "turn off (on by default): download missing files" in " ".join(helps.split())
    assert text
