"""Metrics against hand computations; FLOP counts against closed forms."""
import math

import pytest

import torch
from torch import nn

from synthset.flops import conv2d_flops, count_flops, inference_flops, linear_flops, train_step_flops
from synthset.metrics import accuracy, balanced_accuracy, class_recall, roc_auc
from synthset.models import build_model


def test_accuracy_and_balanced_accuracy_by_hand():
    target = torch.tensor([0, 0, 0, 0, 1, 1])
    pred = torch.tensor([0, 0, 0, 0, 0, 1])
    assert math.isclose(accuracy(pred, target), 5 / 6, rel_tol=1e-6)
    assert math.isclose(balanced_accuracy(pred, target, 2), (1.0 + 0.5) / 2)
    assert balanced_accuracy(torch.zeros(6, dtype=torch.long), target, 2) == 0.5  # majority guess
    assert class_recall(pred, target, 3) == [1.0, 0.5, None]  # class 2 absent from target
    assert class_recall(torch.zeros(6, dtype=torch.long), target, 2) == [1.0, 0.0]


def test_auc_by_hand_with_ties():
    score = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.4])
    target = torch.tensor([0, 0, 1, 1, 1])
    # pairs (pos, neg): (0.35>0.1) (0.35<0.4) (0.8>0.1) (0.8>0.4) (0.4>0.1) (0.4=0.4 -> 1/2)
    assert math.isclose(roc_auc(score, target), (1 + 0 + 1 + 1 + 1 + 0.5) / 6)


def test_conv_and_linear_counts_match_closed_form():
    conv = nn.Conv2d(3, 16, 3, padding=1)
    x = torch.randn(2, 3, 10, 10)
    assert count_flops(lambda: conv(x)) == conv2d_flops(3, 16, 3, 10, 10, batch=2) == 2 * 3 * 9 * 16 * 100 * 2
    lin = nn.Linear(7, 5)
    assert count_flops(lambda: lin(torch.randn(4, 7))) == linear_flops(7, 5, batch=4) == 280


def test_convnet_mnist_inference_flops_closed_form():
    net = build_model("ConvNet", 1, 10, (28, 28))
    expected = (conv2d_flops(1, 128, 3, 32, 32) + conv2d_flops(128, 128, 3, 16, 16)
                + conv2d_flops(128, 128, 3, 8, 8) + linear_flops(2048, 10))
    assert inference_flops(net, (1, 28, 28)) == expected
    assert abs(expected / 1e6 - 96.8) < 0.1  # the 96.8 MFLOP quoted for ConvNet-3 on MNIST


def test_train_step_is_forward_plus_two_backward_matmuls():
    net = build_model("ConvNet", 1, 10, (28, 28))
    fwd = inference_flops(net, (1, 28, 28))
    first = conv2d_flops(1, 128, 3, 32, 32)
    # backward = grad wrt weights (every layer) + grad wrt inputs (all but the first conv)
    assert math.isclose(train_step_flops(net, (1, 28, 28)), 3 * fwd - first, rel_tol=1e-9)


def test_lenet_and_mlp_inference_flops_closed_form():
    lenet = build_model("LeNet", 1, 10, (28, 28))
    expected = (conv2d_flops(1, 6, 5, 28, 28) + conv2d_flops(6, 16, 5, 10, 10)
                + linear_flops(400, 120) + linear_flops(120, 84) + linear_flops(84, 10))
    assert inference_flops(lenet, (1, 28, 28)) == expected
    mlp = build_model("MLP", 1, 10, (28, 28))
    assert inference_flops(mlp, (1, 28, 28)) == linear_flops(784, 128) + linear_flops(128, 128) + linear_flops(128, 10)


@pytest.mark.parametrize("method", ["dm", "datadam"])
def test_matching_iteration_flops_closed_form(method, mnist_train):
    """One iteration = the real forward of C*n_real images + the synthetic forward and the
    input-gradient backward (same FLOPs as the forward; frozen weights get no gradient) of
    C*ipc images, all through the embedding (no classifier). DataDAM's attention maps are
    element-wise, so they add nothing to the count."""
    from helpers import CPU, distill_config

    from synthset.engine.runner import make_context
    from synthset.methods import METHODS
    m = METHODS.get(method)

    def iteration_flops(**kw):
        cfg = distill_config(method, 10, batch_real=256, **kw)
        return m.iteration_flops(make_context(m, mnist_train, cfg, m.options(cfg.options), CPU))
    embed = (conv2d_flops(1, 128, 3, 32, 32) + conv2d_flops(128, 128, 3, 16, 16)
             + conv2d_flops(128, 128, 3, 8, 8))
    f = iteration_flops()
    assert f == (10 * 256 + 2 * 10 * 10) * embed
    assert abs(f / 1e9 - 267.0) < 0.1  # the 267 GFLOP per IPC-10 iteration quoted in README
    # Each extra inner step adds one synthetic forward and backward; the real forward is shared.
    f3 = iteration_flops(inner_steps=3)
    assert f3 == (10 * 256 + 3 * 2 * 10 * 10) * embed


def test_coreset_selection_flops(tiny_train):
    from synthset.config import CoresetConfig
    from synthset.methods.coreset import feature_epochs, selection_flops
    net = build_model("ConvNet", 1, 10, (28, 28))
    n = len(tiny_train)
    fwd, step = inference_flops(net, (1, 28, 28)), train_step_flops(net, (1, 28, 28))
    assert selection_flops(tiny_train, CoresetConfig(features="pixels")) == 0
    assert selection_flops(tiny_train, CoresetConfig(features="random")) == fwd * n
    cfg = CoresetConfig(features="trained")
    assert selection_flops(tiny_train, cfg) == fwd * n + int(step) * n * feature_epochs(tiny_train, cfg)
