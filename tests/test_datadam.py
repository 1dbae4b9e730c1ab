"""DataDAM: attention maps against closed forms, the loss against DM, learning, options."""
import math

import pytest
import torch

from helpers import distill_config, match_loop

from synthset.methods.datadam import DataDAMOptions
from synthset.methods import METHODS
from synthset.methods.datadam import DataDAM, datadam_loss, matched_layers, spatial_attention
from synthset.methods.dm import DM
from synthset.models import MODELS, build_model

CPU = torch.device("cpu")


def test_attention_map_of_a_hand_made_activation():
    # One image, 2 channels, 2x2: |f|^p summed over channels, flattened, L2-normalised.
    f = torch.tensor([[[[1.0, -2.0], [0.0, 1.0]],
                       [[-1.0, 0.0], [3.0, 1.0]]]])
    for p in (1, 2, 4):
        raw = [1 + 1, 2 ** p, 3 ** p, 1 + 1]
        norm = math.sqrt(sum(v * v for v in raw))
        want = torch.tensor([[v / norm for v in raw]])
        assert torch.allclose(spatial_attention(f, p), want), p


def test_loss_by_hand_and_scaling():
    ra, sa = [torch.tensor([[1.0, 0.0]])], [torch.tensor([[0.0, 0.0]])]
    re, se = torch.tensor([[2.0]]), torch.tensor([[0.0]])
    # 100 * 1 (attention) + 100 * 0.5 * 4 (embedding)
    assert datadam_loss(ra, sa, re, se, lam=0.5).item() == pytest.approx(100 + 200)
    assert datadam_loss(ra, sa, None, None, lam=0.5).item() == pytest.approx(100)


def _batch(tiny_train):
    real = tiny_train.normalized(torch.cat([ix[:4] for ix in tiny_train.indices_by_class()]))
    syn = torch.randn(10 * 2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    net = build_model("ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(0))
    return net, real, syn


def test_attention_off_equals_dm_loss(tiny_train):
    net, real, syn = _batch(tiny_train)
    cfg = DataDAMOptions(attention=False)  # lam 0.01: 100 * lam = 1
    got = DataDAM().loss(net, real, syn, 10, cfg)
    assert torch.allclose(got, DM().loss(net, real, syn, 10), rtol=1e-5)


def test_full_loss_equals_per_class_reference_loop(tiny_train):
    net, real, syn = _batch(tiny_train)
    cfg = DataDAMOptions(p=2.0, lam=0.1)
    got = DataDAM().loss(net, real, syn, 10, cfg)
    want = 0.0
    for c in range(10):
        # The reference hooks the ReLU of each block: its output before pooling.
        acts = {}
        hooks = [blk[2].register_forward_hook(lambda m, i, o, k=k: acts.__setitem__(k, o.clone()))
                 for k, blk in enumerate(net.features)]
        er = net.embed(real[4 * c:4 * c + 4])
        ar = dict(acts)
        es = net.embed(syn[2 * c:2 * c + 2])
        for h in hooks:
            h.remove()
        assert ar[0].shape[-1] == 32  # before the first 2x2 pool
        for k in (0, 1):  # intermediate blocks of the 3-block ConvNet
            want += 100 * ((spatial_attention(ar[k], 2).mean(0) - spatial_attention(acts[k], 2).mean(0)) ** 2).sum()
        want += 100 * 0.1 * ((er.mean(0) - es.mean(0)) ** 2).sum()
    assert torch.allclose(got, want, rtol=1e-4)


def test_matched_layers():
    assert matched_layers(3, None) == [0, 1]
    assert matched_layers(7, (0, -1)) == [0, 6]
    with pytest.raises(ValueError, match="layer 3 does not exist"):
        matched_layers(3, (3,))
    with pytest.raises(ValueError, match="at least one"):
        DataDAMOptions(attention=False, embedding=False)


def test_a_few_iterations_lower_the_loss(tiny_train):
    cfg = lambda n: distill_config("datadam", 1, iterations=n, batch_real=16, checkpoint_every=0,
                                   init="noise")
    outs = [match_loop(DataDAM(), tiny_train, cfg(n), device=CPU, generator=torch.Generator().manual_seed(0),
                       log=lambda m: None, progress=False) for n in (0, 25)]
    g = torch.Generator().manual_seed(123)
    real = tiny_train.normalized(torch.cat([ix[:16] for ix in tiny_train.indices_by_class()]))
    nets = [build_model("ConvNet", 1, 10, (28, 28), generator=g) for _ in range(4)]
    with torch.no_grad():
        before, after = (sum(DataDAM().loss(n, real, o.images, 10).item() for n in nets)
                         for o in outs)
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize("name", ["ConvNetD4", "ConvNetBN", "ConvNetD1", "ResNet18"])
def test_works_for_architectures_that_expose_blocks(name, tiny_train):
    assert name in MODELS.names()
    cfg = distill_config("datadam", 1, iterations=1, batch_real=4, checkpoint_every=0, model=name)
    out = match_loop(DataDAM(), tiny_train, cfg, device=CPU, generator=torch.Generator().manual_seed(0),
                     log=lambda m: None, progress=False)
    assert torch.isfinite(out.images).all() and math.isfinite(out.metadata["final_loss"])


def test_registered():
    assert isinstance(METHODS.get("datadam"), DataDAM)
