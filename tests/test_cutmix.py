"""CutMix at evaluation (synthset.cutmix): the box and the label weight against a hand
computation, the mixed batch, the loss, the option's checks and its place in the run key."""
import math

import pytest
import torch
import torch.nn.functional as F

from synthset.config import EvalConfig, TrainConfig
from synthset.cutmix import cutmix, cutmix_box, cutmix_loss
from synthset.evaluate import _config_key, evaluate_run


def test_the_box_has_sides_sqrt_one_minus_lambda_and_is_clipped_at_the_border():
    # lam 0.75: sides 28 x sqrt(0.25) = 14, centred at row 14, column 7
    assert cutmix_box(28, 28, 0.75, 0.5, 0.25) == (7, 21, 0, 14)
    # centred in a corner: clipped to a quarter of the 14 x 14 box
    assert cutmix_box(28, 28, 0.75, 0.0, 0.0) == (0, 7, 0, 7)
    assert cutmix_box(28, 28, 1.0, 0.3, 0.3)[0:2] == (8, 8)  # lam 1: an empty box


def test_a_mixed_batch_carries_the_partners_box_and_the_weight_of_its_area():
    x = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out, perm, lam = cutmix(x, torch.Generator().manual_seed(3))
    # the same draws, replayed: lam, the box's centre, then the partners
    g = torch.Generator().manual_seed(3)
    l0, cy, cx = torch.rand(3, generator=g).tolist()
    assert torch.equal(perm, torch.randperm(6, generator=g))
    r0, r1, c0, c1 = cutmix_box(28, 28, l0, cy, cx)
    inside = torch.zeros(28, 28, dtype=torch.bool)
    inside[r0:r1, c0:c1] = True
    assert 0 < int(inside.sum()) < 28 * 28
    assert torch.equal(out[..., inside], x[perm][..., inside])  # the partner's box
    assert torch.equal(out[..., ~inside], x[..., ~inside])  # the rest untouched
    assert lam == pytest.approx(1.0 - float(inside.sum()) / (28 * 28))  # own label: area kept
    assert not torch.equal(out, x)


def test_the_loss_mixes_the_two_labels_cross_entropies_by_lambda():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    y, perm = torch.tensor([0, 1]), torch.tensor([1, 0])
    ce = lambda lab: float(F.cross_entropy(logits, lab))
    assert float(cutmix_loss(logits, y, perm, 0.25)) == pytest.approx(
        0.25 * ce(y) + 0.75 * ce(torch.tensor([1, 0])))
    assert float(cutmix_loss(logits, y, perm, 1.0)) == pytest.approx(ce(y))
    # by hand for image 0 with lam 1: -log softmax([2, 0, -1])[0]
    want0 = -(2.0 - math.log(math.exp(2) + 1 + math.exp(-1)))
    assert float(F.cross_entropy(logits[:1], y[:1])) == pytest.approx(want0)


def test_cutmix_is_a_share_and_refuses_dp_sgd():
    with pytest.raises(ValueError, match="cutmix must be a share"):
        TrainConfig(cutmix=1.5)
    with pytest.raises(ValueError, match="DP-SGD"):
        TrainConfig(cutmix=0.5, dp_epsilon=8.0)


def test_cutmix_changes_training_and_joins_the_run_key_only_when_set(tiny_train, tiny_test):
    fp32 = TrainConfig(precision="fp32")
    assert _config_key(EvalConfig(train=fp32), 100) == "a8ffe56cc8085de2"  # unchanged when off
    assert _config_key(EvalConfig(train=TrainConfig(precision="fp32", cutmix=0.5)), 100) != "a8ffe56cc8085de2"
    x, y = tiny_train.normalized()[:50], tiny_train.labels[:50]
    runs = [evaluate_run("MLP", x, y, tiny_test, TrainConfig(epochs=2, augment=False, cutmix=c),
                         seed=0, run=0, device=torch.device("cpu"), progress=False)
            for c in (0.0, 1.0, 1.0)]
    assert runs[1].final_train_loss != runs[0].final_train_loss
    assert runs[1].final_train_loss == runs[2].final_train_loss  # seeded draws
