"""The accuracy ingredients: M3D's Gaussian MMD, NCFM's characteristic-function discrepancy,
IID's covariance and centralisation terms,
DANCE's trained experts (interpolation, calibration, cache, exact resume) checked against
hand computations on tiny tensors and on tiny real MNIST."""
from __future__ import annotations

import json
import math

import pytest
import torch

from synthset.methods import METHODS
from synthset.methods.experts import calibration_loss, interpolate
from synthset.methods.matching import MatchingOptions
from synthset.methods.mmd import (MMDOptions, cf_discrepancy, centralisation_loss,
                                  covariance_loss, gaussian_mmd, sq_dists)

from helpers import CPU, distill_config, match_loop

RUN = dict(device=CPU, log=lambda m: None, progress=False)


def test_gaussian_mmd_of_two_known_samples_by_hand():
    # one class; real {0, 2}, synthetic {1} on a line (d = 1)
    real = torch.tensor([[[0.0], [2.0]]])
    syn = torch.tensor([[[1.0]]])
    # pooled squared distances: rr {0,4,4,0}, ss {0}, rs {1,1} twice -> (8 + 0 + 4) / 9
    base = 12 / 9
    h = 1.0 * base
    k = lambda d: math.exp(-d / h)  # noqa: E731
    mmd = (2 * k(0) + 2 * k(4)) / 4 + k(0) - 2 * (2 * k(1)) / 2
    assert gaussian_mmd(real, syn, (1.0,)).item() == pytest.approx(h / 2 * mmd, rel=1e-6)
    # two bandwidths: the mean of the two terms
    h2 = 4 * base
    k2 = lambda d: math.exp(-d / h2)  # noqa: E731
    mmd2 = (2 * k2(0) + 2 * k2(4)) / 4 + k2(0) - 2 * k2(1)
    assert gaussian_mmd(real, syn, (1.0, 4.0)).item() == pytest.approx(
        (h / 2 * mmd + h2 / 2 * mmd2) / 2, rel=1e-6)


def test_gaussian_mmd_tends_to_dm_at_large_bandwidth_and_is_zero_on_equal_samples():
    g = torch.Generator().manual_seed(0)
    real, syn = torch.randn(3, 8, 5, generator=g), torch.randn(3, 4, 5, generator=g) + 0.3
    dm = (real.mean(1) - syn.mean(1)).pow(2).sum()
    assert gaussian_mmd(real, syn, (1e4,)).item() == pytest.approx(dm.item(), rel=1e-2)
    assert gaussian_mmd(real, real.clone(), (0.5, 1.0)).item() == pytest.approx(0, abs=1e-6)


def test_sq_dists_by_hand():
    a, b = torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[3.0, 4.0]])
    assert sq_dists(a, b).tolist() == [[25.0], [13.0]]


def test_covariance_loss_equals_the_frobenius_distance_of_the_covariances():
    g = torch.Generator().manual_seed(1)
    real, syn = torch.randn(2, 7, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    want = 0.0
    for c in range(2):
        a = real[c] - real[c].mean(0)
        b = syn[c] - syn[c].mean(0)
        want += ((a.T @ a) / 7 - (b.T @ b) / 3).pow(2).sum().item()
    assert covariance_loss(real, syn).item() == pytest.approx(want, rel=1e-5)
    # a 1-d hand case: real {0, 2} has variance 1, syn {0, 4} variance 4 -> (1 - 4)^2
    assert covariance_loss(torch.tensor([[[0.0], [2.0]]]),
                           torch.tensor([[[0.0], [4.0]]])).item() == pytest.approx(9.0)


def test_centralisation_loss_by_hand():
    real = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])  # class mean (1, 0)
    syn = torch.tensor([[[1.0, 1.0], [4.0, 0.0]]])  # squared distances 1 and 9
    assert centralisation_loss(real, syn).item() == pytest.approx(5.0)


def test_interpolated_weights_by_hand():
    a = {"w": torch.tensor([0.0, 2.0]), "b": torch.tensor([1.0])}
    b = {"w": torch.tensor([4.0, 2.0]), "b": torch.tensor([-1.0])}
    mid = interpolate(a, b, 0.25)
    assert mid["w"].tolist() == [1.0, 2.0] and mid["b"].tolist() == [0.5]
    assert torch.equal(interpolate(a, b, 0.0)["w"], a["w"])
    assert torch.equal(interpolate(a, b, 1.0)["w"], b["w"])


def test_calibration_loss_is_the_cross_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    want = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(math.e / (1 + math.e))) / 2
    assert calibration_loss(logits, torch.tensor([0, 1])).item() == pytest.approx(want, rel=1e-6)


def test_cf_discrepancy_of_two_known_samples_by_hand():
    """Real {(1, 0), (0, 1)}, synthetic {(1, 0)}, one frequency t = (pi / 2, 0):
    phi_r = (e^{i pi/2} + e^0) / 2 = (1 + i) / 2, phi_s = i. Amplitudes sqrt(1/2) and 1;
    amplitude term (sqrt(1/2) - 1)^2, phase term 2 (sqrt(1/2) - 0 - 1/2); at alpha 1/2 the
    root of their mean is |phi_r - phi_s| / sqrt(2) = 1/2."""
    real = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    syn = torch.tensor([[[3.0, 0.0]]])  # normalised to (1, 0): only directions count
    t = torch.tensor([[math.pi / 2, 0.0]])
    assert cf_discrepancy(real, syn, t).item() == pytest.approx(0.5, rel=1e-5)
    amp = (math.sqrt(0.5) - 1) ** 2
    assert cf_discrepancy(real, syn, t, alpha=1.0).item() == pytest.approx(math.sqrt(amp), rel=1e-5)
    phase = 2 * (math.sqrt(0.5) - 0.5)
    assert cf_discrepancy(real, syn, t, alpha=0.0).item() == pytest.approx(math.sqrt(phase), rel=1e-5)
    # two classes sum; equal samples give zero up to rounding
    two = cf_discrepancy(real.repeat(2, 1, 1), syn.repeat(2, 1, 1), t)
    assert two.item() == pytest.approx(1.0, rel=1e-5)
    x = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0))
    # (the root lifts fp32 rounding of the phase term, ~1e-7, to ~1e-4)
    assert cf_discrepancy(x, x, torch.randn(16, 4)).item() < 1e-3


def test_cf_kernel_draws_its_frequencies_from_the_given_generator(tiny_train):
    mmd, o = METHODS.get("mmd"), MMDOptions(kernel="cf", cf_freqs=64)
    from synthset.models import build_model
    info = tiny_train.info
    net = build_model("ConvNet", info.channels, info.num_classes, info.size,
                      generator=torch.Generator().manual_seed(0))
    x = tiny_train.normalized()
    real, syn = x[:20], x[20:30].clone().requires_grad_()  # 10 blocks of 2 and of 1

    def loss(seed):
        return mmd.loss(net, real, syn, 10, o, generator=torch.Generator().manual_seed(seed))
    assert loss(1).item() == loss(1).item() and loss(1).item() != loss(2).item()
    # the frequencies are standard normal in the embedding's dimension
    means = mmd.real_means(net, real, 10, o)
    f = mmd.draws(o, means, torch.Generator().manual_seed(0))[0]
    assert f.shape == (64, means[0].shape[-1])
    assert mmd.draws(MMDOptions(), means, torch.Generator()) == ()


def test_cf_kernel_runs_on_the_engine_and_resumes_exactly(tiny_train, tmp_path):
    kw = dict(iterations=4, batch_real=8, init="noise", kernel="cf", cf_freqs=32)
    full = match_loop(METHODS.get("mmd"), tiny_train, distill_config("mmd", **kw), **RUN)
    assert torch.isfinite(full.images).all()
    dm = match_loop(METHODS.get("dm"), tiny_train, distill_config(
        "dm", iterations=4, batch_real=8, init="noise"), **RUN)
    assert not torch.allclose(full.images, dm.images, atol=1e-3)
    match_loop(METHODS.get("mmd"), tiny_train, distill_config("mmd", **dict(kw, iterations=2)),
               run_dir=tmp_path / "r", **RUN)
    resumed = match_loop(METHODS.get("mmd"), tiny_train, distill_config("mmd", **kw),
                         run_dir=tmp_path / "r", resume=True, **RUN)
    assert torch.equal(full.images, resumed.images)


def test_linear_mmd_without_extras_is_dm(tiny_train):
    kw = dict(iterations=3, batch_real=8, init="noise")
    dm = match_loop(METHODS.get("dm"), tiny_train, distill_config("dm", **kw), **RUN)
    lin = match_loop(METHODS.get("mmd"), tiny_train, distill_config("mmd", kernel="linear", **kw),
                     **RUN)
    assert torch.allclose(dm.images, lin.images, atol=1e-5)
    gauss = match_loop(METHODS.get("mmd"), tiny_train, distill_config("mmd", **kw), **RUN)
    assert not torch.allclose(dm.images, gauss.images, atol=1e-3)


def test_bad_ingredient_options_raise():
    with pytest.raises(ValueError, match="ce-weight needs trained networks"):
        MatchingOptions(ce_weight=0.1)
    with pytest.raises(ValueError, match="ce-net expert needs --experts"):
        MatchingOptions(ce_weight=0.1, net_pool=2, ce_net="expert")
    with pytest.raises(ValueError, match="use one"):
        MatchingOptions(experts=2, net_pool=2)
    with pytest.raises(ValueError, match="expert_mix"):
        MatchingOptions(experts=2, expert_mix=0)
    with pytest.raises(ValueError, match="bandwidths"):
        MMDOptions(bandwidths=(0.0,))
    with pytest.raises(ValueError, match="kernel"):
        MMDOptions(kernel="laplace")
    with pytest.raises(ValueError, match="cf_alpha"):
        MMDOptions(kernel="cf", cf_alpha=1.5)


def _expert_cfg(**kw):
    base = dict(iterations=4, batch_real=8, init="noise", experts=2, expert_steps=3,
                expert_batch=16, ce_weight=0.5)
    base.update(kw)
    return distill_config("dm", **base)


def test_experts_are_cached_keyed_by_the_data_and_counted(tiny_train, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHSET_CACHE", str(tmp_path / "cache"))
    logs: list[str] = []
    run = dict(RUN, log=logs.append)
    first = match_loop(METHODS.get("dm"), tiny_train, _expert_cfg(), **run)
    files = sorted((tmp_path / "cache" / "experts").glob("*.safetensors"))
    assert len(files) == 2 and not any("loaded" in m for m in logs)
    setup = first.metadata["setup"]
    assert setup["experts"]["cached"] == 0 and setup["setup_seconds"] > 0
    # the experts' training FLOPs: 2 experts x 3 steps x 16 images, in the set's FLOPs
    assert first.metadata["distill_flops"] == (first.metadata["flops_per_iteration"] * 4
                                               + setup["setup_flops"])
    logs.clear()
    second = match_loop(METHODS.get("dm"), tiny_train, _expert_cfg(), **run)
    assert any("2 of 2 loaded" in m for m in logs)
    assert torch.equal(first.images, second.images)
    assert second.metadata["setup"]["setup_seconds"] == setup["setup_seconds"]  # recorded cost
    # another training split (its fingerprint differs): new experts, not the cached ones
    other = type(tiny_train)(images=tiny_train.images.flip(0), labels=tiny_train.labels.flip(0),
                             info=tiny_train.info)
    match_loop(METHODS.get("dm"), other, _expert_cfg(), **run)
    assert len(list((tmp_path / "cache" / "experts").glob("*.safetensors"))) == 4
    assert first.metadata["setup"]["experts"]["key"] != \
        match_loop(METHODS.get("dm"), other, _expert_cfg(), **run).metadata["setup"]["experts"]["key"]


def test_experts_change_the_set_and_resume_exactly(tiny_train, tmp_path):
    plain = match_loop(METHODS.get("dm"), tiny_train,
                       distill_config("dm", iterations=4, batch_real=8, init="noise"), **RUN)
    full = match_loop(METHODS.get("dm"), tiny_train, _expert_cfg(), **RUN)
    assert not torch.allclose(plain.images, full.images)
    match_loop(METHODS.get("dm"), tiny_train, _expert_cfg(iterations=2), run_dir=tmp_path / "r",
               **RUN)
    assert json.loads((tmp_path / "r" / "checkpoint.json").read_text())["iteration"] == 2
    resumed = match_loop(METHODS.get("dm"), tiny_train, _expert_cfg(), run_dir=tmp_path / "r",
                         resume=True, **RUN)
    assert torch.equal(full.images, resumed.images)


def test_experts_work_with_mmd_and_datadam(tiny_train):
    for name in ("mmd", "datadam"):
        for ce_net in ("matched", "expert"):
            cfg = distill_config(name, iterations=2, batch_real=8, init="noise", experts=1,
                                 expert_steps=2, expert_batch=16, ce_weight=0.1, ce_net=ce_net)
            out = match_loop(METHODS.get(name), tiny_train, cfg, **RUN)
            assert torch.isfinite(out.images).all()


def test_matched_cross_entropy_is_the_classifier_on_the_embedding_by_hand(tiny_train):
    """syn_loss with ce_weight w = DM loss + w * CE(classifier(embed(syn)), class-major labels),
    computed by hand on one network; the compiled objective gives the same."""
    from synthset.methods.dm import dm_loss
    dm = METHODS.get("dm")
    o = dm.options({"ce_weight": 0.5, "experts": 1})
    net = __import__("synthset.models", fromlist=["build_model"]).build_model(
        "ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(0))
    real = tiny_train.normalized(torch.arange(0, 300, 3))  # class-major: 10 per class
    order = torch.argsort(tiny_train.labels[torch.arange(0, 300, 3)], stable=True)
    real = real[order]
    syn = real[::5].clone()  # 2 per class, class-major
    means = dm.real_means(net, real, 10, o)
    got = dm.syn_loss(net, means, syn, 10, o)
    emb = net.embed(syn)
    want = dm_loss(means[0], emb.reshape(10, 2, -1).mean(1)) + 0.5 * torch.nn.functional.cross_entropy(
        net.classifier(emb), torch.arange(10).repeat_interleave(2))
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
