"""Gradient matching (DC, DSA): the distance against a hand computation, learning, and
exact resume on the engine."""
import json

import pytest
import torch
import torch.nn.functional as F

from helpers import CPU, distill_config, match_loop

from synthset.methods import METHODS
from synthset.methods.gm import DC, gradient_distance, layer_distance, loops_for
from synthset.models import build_model


def test_layer_distance_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    # row 0: orthogonal -> 1 - 0; row 1: parallel -> 1 - 1 (up to the 1e-6 in the denominator)
    assert layer_distance(a, b).item() == pytest.approx(1.0, abs=1e-5)
    w_real, w_syn = torch.randn(4, 3, 3, 3), torch.randn(4, 3, 3, 3)
    want = sum(1 - torch.dot(w_real[i].flatten(), w_syn[i].flatten())
               / (w_real[i].norm() * w_syn[i].norm() + 1e-6) for i in range(4))
    assert layer_distance(w_real, w_syn).item() == pytest.approx(want.item(), rel=1e-5)
    assert layer_distance(torch.ones(5), torch.zeros(5)).item() == 0  # biases count as 0
    assert gradient_distance([a, torch.ones(3)], [b, torch.zeros(3)]).item() == pytest.approx(1.0, abs=1e-5)


def test_loops_follow_the_official_table():
    assert loops_for(1) == (1, 1) and loops_for(10) == (10, 50) and loops_for(50) == (50, 10)
    assert loops_for(2) == (1, 1) and loops_for(12) == (10, 50)


def test_class_gradients_are_the_per_class_losses_gradients(tiny_train):
    net = build_model("ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(0))
    params = [p for p in net.parameters() if p.dim() > 1]
    x = tiny_train.normalized(torch.cat([ix[:3] for ix in tiny_train.indices_by_class()]))
    got = DC().class_gradients(net, params, x, 10, create_graph=False)
    loss = F.cross_entropy(net(x[6:9]), torch.full((3,), 2))
    want = torch.autograd.grad(loss, params)
    assert all(torch.allclose(g, w, atol=1e-6) for g, w in zip(got[2], want))


@pytest.mark.parametrize("name", ["dc", "dsa"])
def test_a_run_records_its_iterations_and_flops(name, tiny_train):
    """Both variants run on the engine and record what they did (the loss trend is
    ``test_gm_loss_decreases_over_iterations``)."""
    cfg = distill_config(name, 1, iterations=12, batch_real=16, checkpoint_every=0)
    out = match_loop(METHODS.get(name), tiny_train, cfg)
    h = json.loads(json.dumps(out.metadata))  # recorded metadata only
    assert h["iterations"] == 12 and torch.isfinite(out.images).all()
    from synthset.engine.runner import make_context
    ctx = make_context(METHODS.get(name), tiny_train, cfg, METHODS.get(name).options({}), CPU)
    assert h["flops_per_iteration"] == METHODS.get(name).iteration_flops(ctx) > 0


def test_gm_loss_decreases_over_iterations(tiny_train, tmp_path):
    cfg = distill_config("dc", 1, iterations=30, batch_real=16, checkpoint_every=0, lr_img=0.5)
    match_loop(DC(), tiny_train, cfg, run_dir=tmp_path)
    history = json.loads((tmp_path / "checkpoint.json").read_text())["history"]
    assert sum(history[-10:]) < sum(history[:10])


def test_resume_equals_an_uninterrupted_run(tiny_train, tmp_path):
    """IPC 2 uses 1 outer round; 2 outer rounds with 1 inner epoch exercise the network
    training between image steps. Stopped after 2 of 4 iterations, resumed: bit for bit."""
    kw = dict(batch_real=8, checkpoint_every=0, outer_loop=2, inner_loop=1)
    full = match_loop(METHODS.get("dsa"), tiny_train, distill_config("dsa", 2, iterations=4, **kw))
    match_loop(METHODS.get("dsa"), tiny_train, distill_config("dsa", 2, iterations=2, **kw),
               run_dir=tmp_path)
    resumed = match_loop(METHODS.get("dsa"), tiny_train, distill_config("dsa", 2, iterations=4, **kw),
                         run_dir=tmp_path, resume=True)
    assert torch.equal(full.images, resumed.images)
