import pytest
import torch

from synthset.config import CoresetConfig, DistillConfig
from synthset.methods import METHODS
from synthset.methods.coreset import embed_all, embed_batch, herding, kcenter
from synthset.models import build_model


def test_herding_by_hand():
    # Class mean is 2.0; herding first takes the point nearest the mean (2.1), then the
    # one that brings the running mean back to the mean: (2.1 + x) / 2 closest to 2 -> 1.8.
    f = torch.tensor([[0.0], [1.8], [2.1], [4.1]])
    assert herding(f, 2).tolist() == [2, 1]


def test_kcenter_by_hand():
    f = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [0.0, 9.0], [0.5, 0.5]])
    # mean = (2.3, 1.9): nearest is (0.5, 0.5) [2.28 vs 2.30 for (1, 0)]; farthest from it
    # is (10, 0); then the point farthest from both centers, (0, 9).
    assert kcenter(f, 3).tolist() == [4, 2, 3]


@pytest.mark.parametrize("method", ["random", "herding", "kcenter"])
def test_per_class_selection_of_real_images(method, tiny_train):
    cfg = DistillConfig(method=method, ipc=3, coreset=CoresetConfig(features="random"))
    out = METHODS.get(method).run(tiny_train, cfg, device=torch.device("cpu"),
                                  generator=torch.Generator().manual_seed(0), log=lambda m: None)
    assert out.labels.tolist() == sorted(out.labels.tolist()) and torch.bincount(out.labels).tolist() == [3] * 10
    idx = torch.tensor(out.metadata["indices"])
    assert torch.equal(out.images, tiny_train.normalized(idx))
    assert torch.equal(tiny_train.labels[idx], out.labels)


def test_ipc_larger_than_a_class_is_an_error(tiny_train):
    with pytest.raises(ValueError, match=r"--ipc 31 is larger than a class.*use --ipc <= 30"):
        METHODS.get("random").run(tiny_train, DistillConfig(ipc=31), device=torch.device("cpu"),
                                  generator=torch.Generator())


def test_embedding_batch_bounds_pixels_not_images(tiny_train):
    # 1024 images at MNIST's 28 px; fewer as the resolution grows, so the activations (and
    # the peak memory) stay the same size; the features do not depend on the batch.
    assert embed_batch((28, 28)) == 1024
    assert embed_batch((64, 64)) == 1024 * 28 * 28 // (64 * 64) == 196
    assert embed_batch((224, 224)) == 16
    net = build_model("ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(0))
    cpu = torch.device("cpu")
    torch.testing.assert_close(embed_all(net, tiny_train, cpu, batch=7), embed_all(net, tiny_train, cpu))


def test_feature_net_cache_tells_two_subsets_of_one_size_apart(tiny_train):
    """Membership shadows are random halves of one size: each must get its own feature net."""
    from conftest import subset

    from synthset.methods.coreset import fingerprint
    a, b = subset(tiny_train, 10, seed=0), subset(tiny_train, 10, seed=1)
    assert len(a) == len(b) and fingerprint(a) != fingerprint(b)
    assert fingerprint(a) == fingerprint(subset(tiny_train, 10, seed=0))
