"""Membership-inference attacks: metrics against hand computations, chance when the model saw
neither group, near-perfect when it memorised the members."""
import math

import pytest
import torch

from synthset.config import TrainConfig
from synthset.membership import (attack_report, auc_interval, lira_offline_scores, loss_scores,
                                 losses_and_phi, tpr_at_fpr, wilson)
from synthset.models import build_model
from synthset.training import train_network


def test_tpr_at_fpr_and_intervals_by_hand():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    member = torch.tensor([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    # 7 negatives: FPR 0 allows none above the threshold 0.7 -> TPR 2/3
    assert tpr_at_fpr(scores, member, 0.0) == pytest.approx(2 / 3)
    assert tpr_at_fpr(scores, member, 1 / 7) == pytest.approx(1.0)  # one negative allowed
    lo, hi = wilson(0.5, 100)
    assert (lo, hi) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    # Hanley & McNeil at AUC 0.5, 100 + 100: q1 = q2 = 1/3, se^2 = (0.25 + 2 * 99 / 12) / 10^4
    se = math.sqrt((0.25 + 2 * 99 * (1 / 3 - 0.25)) / 1e4)
    assert auc_interval(0.5, 100, 100) == pytest.approx((0.5 - 1.96 * se, 0.5 + 1.96 * se))


def test_logit_confidence_is_log_odds_of_the_true_class():
    net = torch.nn.Linear(3, 4)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 0])
    loss, phi = losses_and_phi(net, x, y)
    p = torch.softmax(net(x).double(), 1)[torch.arange(5), y]
    assert torch.allclose(phi, torch.log(p / (1 - p)), atol=1e-9)
    assert torch.allclose(loss, -torch.log(p), atol=1e-9)


def test_lira_offline_is_the_z_score_under_the_out_models():
    out = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    z = lira_offline_scores(torch.tensor([2.0, 7.0]), out)
    assert z.tolist() == pytest.approx([0.0, 2.0])


def _net(train_x, train_y, epochs, seed):
    g = torch.Generator().manual_seed(seed)
    net = build_model("MLP", 1, 10, (28, 28), generator=g)
    cfg = TrainConfig(epochs=epochs, augment=False, batch_size=64, lr=0.05)
    from synthset.data.base import DatasetInfo
    info = DatasetInfo(name="mnist", channels=1, size=(28, 28), class_names=tuple("0123456789"),
                       mean=(0.1307,), std=(0.3081,))
    train_network(net, train_x, train_y, info, cfg, generator=g, device=torch.device("cpu"), progress=False)
    return net


def test_attack_is_at_chance_on_unseen_data_and_near_perfect_on_memorised_members(mnist_train):
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(mnist_train), generator=g)[:700]
    x, y = mnist_train.normalized(idx), mnist_train.labels[idx]
    # members 0..199, non-members 200..399, a third disjoint group trains the "saw neither" model
    members, non = slice(0, 200), slice(200, 400)
    is_member = torch.cat([torch.ones(200), torch.zeros(200)]).long()
    audited_x, audited_y = torch.cat([x[members], x[non]]), torch.cat([y[members], y[non]])
    neither = _net(x[400:700], y[400:700], 30, seed=1)
    rep = attack_report(loss_scores(losses_and_phi(neither, audited_x, audited_y)[0]), is_member)
    assert abs(rep["auc"] - 0.5) < 0.1 and rep["auc_ci"][0] < 0.5 < rep["auc_ci"][1]
    # memorisation made unmistakable: random labels, which only a model that saw an example
    # can fit (on true MNIST labels, unseen digits also get near-zero loss: AUC 0.77 here)
    noisy = torch.randint(0, 10, (400,), generator=torch.Generator().manual_seed(5))
    overfit = _net(x[members], noisy[:200], 150, seed=2)
    rep = attack_report(loss_scores(losses_and_phi(overfit, audited_x, noisy)[0]), is_member)
    assert rep["auc"] > 0.95 and rep["tpr_at_0.01_fpr"] > 0.5
    assert rep["fpr_0.01_resolvable"] and not rep["fpr_0.001_resolvable"]  # 200 negatives


def test_membership_protocol_on_a_random_real_subset_runs_end_to_end(tiny_train):
    from synthset.membership import membership_attack
    from helpers import distill_config
    cfg = distill_config("random", 5)
    rep = membership_attack("random", tiny_train, cfg, TrainConfig(epochs=3, augment=False),
                            model="MLP", audited=40, models=1, shadows=2, seed=0, log=lambda m: None)
    assert rep["audited"] == 80 and rep["loss"]["members"] == 40 and rep["loss"]["non_members"] == 40
    for attack in ("loss", "lira_offline"):
        assert 0.0 <= rep[attack]["auc"] <= 1.0
        assert rep[attack]["auc_ci"][0] <= rep[attack]["auc"] <= rep[attack]["auc_ci"][1]
