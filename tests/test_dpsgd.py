"""DP-SGD references (synthset.dpsgd): the accountant's epsilon is reached and recorded, the
noise grows as epsilon shrinks, runs are reproducible from their seed, batch norm is refused,
and `synthset train --dp-epsilon` records epsilon in eval.json."""
import json

import pytest
import torch

from helpers import folder_data

from synthset.cli import main
from synthset.config import EvalConfig, TrainConfig
from synthset.evaluate import _config_key
from synthset.models import build_model
from synthset.dpsgd import train_protocol

pytest.importorskip("opacus")


def _train(tiny_train, eps: float, model: str = "ConvNet"):
    info = tiny_train.info
    net = build_model(model, info.channels, info.num_classes, info.size,
                      generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(epochs=2, batch_size=64, dp_epsilon=eps, augment=False)
    rec = train_protocol(net, tiny_train.images[:200], tiny_train.labels[:200], info, cfg,
                        generator=torch.Generator().manual_seed(1), device=torch.device("cpu"),
                        progress=False)
    return net, rec


def test_dp_sgd_reaches_its_epsilon_records_it_and_is_reproducible(tiny_train):
    net, rec = _train(tiny_train, 8.0)
    dp = rec["dp"]
    # the noise is calibrated so that the planned steps spend the budget, not more
    assert 7.5 < dp["epsilon"] <= 8.0 + 1e-6 and dp["delta"] == 1e-5
    # Poisson sampling at 1 / (batches per epoch), Opacus's rate: 4 batches of 200 at 64
    assert dp["sample_rate"] == 0.25 and rec["steps"] > 0
    again, rec2 = _train(tiny_train, 8.0)
    assert rec2["dp"] == dp
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    _, strict = _train(tiny_train, 1.0)
    assert strict["dp"]["epsilon"] <= 1.0 + 1e-6
    assert strict["dp"]["noise_multiplier"] > 2 * dp["noise_multiplier"]  # less budget, more noise


def test_dp_sgd_refuses_batch_norm_and_bad_budgets(tiny_train):
    with pytest.raises(ValueError, match="batch norm"):
        _train(tiny_train, 8.0, model="ConvNetBN")
    with pytest.raises(ValueError, match="dp_epsilon must be > 0"):
        TrainConfig(dp_epsilon=0.0)
    with pytest.raises(ValueError, match="dp_delta"):
        TrainConfig(dp_epsilon=1.0, dp_delta=1.5)


def test_dp_options_join_the_run_key_only_when_set():
    plain = EvalConfig(train=TrainConfig(precision="fp32"))
    assert _config_key(plain, 100) == "a8ffe56cc8085de2"  # existing run logs still resume
    assert _config_key(EvalConfig(train=TrainConfig(precision="fp32", dp_epsilon=4.0)), 100) \
        != _config_key(EvalConfig(train=TrainConfig(precision="fp32", dp_epsilon=8.0)), 100)


def test_train_with_dp_epsilon_records_it(tmp_path, capsys):
    folder_data(tmp_path / "data", per_class=12, size=16, seed=0)
    assert main(["train", "--dataset", "folder", "--data-path", str(tmp_path / "data"),
                 "--models", "ConvNetD2", "--epochs", "2", "--batch", "8", "--dp-epsilon", "4",
                 "--out", str(tmp_path / "dp"), "--device", "cpu"]) == 0
    rep = json.loads((tmp_path / "dp" / "eval.json").read_text())
    m = rep["models"]["ConvNetD2"]
    assert len(m["dp"]["epsilon"]) == 1 and m["dp"]["epsilon"][0] <= 4.0 + 1e-6
    assert m["precision"]["precision"] in ("fp32", "bf16") and rep["config"]["train"]["dp_epsilon"] == 4.0
    assert "DP-SGD epsilon" in capsys.readouterr().out


def test_dp_sgd_under_bf16_clips_fp32_per_example_gradients(tiny_train):
    from synthset.compute import fixed
    from synthset.dpsgd import _fp32_per_example_grads
    info = tiny_train.info
    net = build_model("ConvNet", info.channels, info.num_classes, info.size,
                      generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(epochs=1, batch_size=64, dp_epsilon=8.0, augment=False)
    rec = train_protocol(net, tiny_train.images[:128], tiny_train.labels[:128], info, cfg,
                         generator=torch.Generator().manual_seed(1),
                         compute=fixed(torch.device("cpu"), "bf16"), progress=False)
    assert rec["dp"]["precision"] == "bf16" and rec["dp"]["epsilon"] <= 8.0 + 1e-6
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in net.parameters())
    # the hooks' bf16 per-example gradients are clipped in fp32
    lin = torch.nn.Linear(3, 2)
    lin.weight.grad_sample = torch.ones(4, 2, 3, dtype=torch.bfloat16)
    _fp32_per_example_grads(lin)
    assert lin.weight.grad_sample.dtype == torch.float32 and not hasattr(lin.bias, "grad_sample")


def test_dp_sgd_precision_is_timed_on_its_own_step_uncompiled():
    from synthset.evaluate import resolve_compute
    logs = []
    cfg = EvalConfig(models=("ConvNet",), train=TrainConfig(dp_epsilon=4.0, compile=True))
    c = resolve_compute(cfg, torch.zeros(8, 1, 28, 28), torch.device("cpu"), log=logs.append)["ConvNet"]
    assert not c.compile and c.precision_of("train") in ("fp32", "bf16")


def test_train_subset_is_class_balanced_and_seeded(tmp_path, capsys):
    folder_data(tmp_path / "data", per_class=12, size=16, seed=0)
    argv = ["train", "--dataset", "folder", "--data-path", str(tmp_path / "data"), "--models",
            "ConvNetD2", "--epochs", "1", "--batch", "8", "--subset", "6", "--device", "cpu",
            "--out", str(tmp_path / "sub")]
    assert main(argv) == 0
    assert "a class-balanced subset of 6" in capsys.readouterr().out
    rep = json.loads((tmp_path / "sub" / "eval.json").read_text())
    assert rep["config"]["subset"] == 6
    assert main(argv[:-4] + ["--subset", "0"]) == 2
    assert "subset must be >= 1" in capsys.readouterr().err


def test_class_balanced_subset_draws_the_same_count_per_class(tiny_train):
    from synthset.data.split import balanced_subset as _class_balanced
    a = _class_balanced(tiny_train, 50, seed=0)
    assert torch.bincount(a.labels, minlength=10).tolist() == [5] * 10
    assert torch.equal(a.images, _class_balanced(tiny_train, 50, seed=0).images)  # seeded
    assert not torch.equal(a.images, _class_balanced(tiny_train, 50, seed=1).images)
    with pytest.raises(ValueError, match="fewer than one image per class"):
        _class_balanced(tiny_train, 5, seed=0)
