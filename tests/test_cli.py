"""The command line end to end on real MNIST, and the messages users see on bad input."""
import json

import pytest

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
    (["distill", "--dataset", "cifar", "--out", "x"], "unknown dataset 'cifar'; choose one of: mnist, mhist, folder"),
    (["distill", "--ipc", "7000", "--out", "x"], "--ipc 7000 is larger than a class"),
    (["evaluate", "missing-dir"], "not a synthset run directory"),
    (["train", "--model", "ResNet99"], "unknown model 'ResNet99'"),
    (["train", "--device", "cuda:0"], "no CUDA GPU is available"),
])
def test_bad_input_messages(argv, message, capsys, shared_root, monkeypatch):
    if "cuda" in " ".join(argv):
        monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
