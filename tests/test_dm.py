"""Distribution Matching: the loss against hand computations, learning, resume, NaN guard."""
import json
import math

import pytest
import torch

from helpers import distill_config, match_loop

from synthset.config import EngineConfig
from synthset.engine.schedule import cosine_lr, ema_update
from synthset.methods import METHODS
from synthset.methods.dm import DM, dm_loss
from synthset.methods.matching import class_means
from synthset.models import build_model

CPU = torch.device("cpu")


def test_dm_loss_by_hand():
    real = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    syn = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert dm_loss(real, syn).item() == (1 + 4) + (1 + 1)
    emb = torch.tensor([[1.0], [3.0], [10.0], [20.0]])  # 2 classes x 2 images, class-major
    assert class_means(emb, 2).flatten().tolist() == [2.0, 15.0]


def test_dm_loss_equals_per_class_loop_of_reference(tiny_train):
    net = build_model("ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(0))
    real = tiny_train.normalized(torch.cat([ix[:4] for ix in tiny_train.indices_by_class()]))
    syn = torch.randn(10 * 2, 1, 28, 28)
    got = DM().loss(net, real, syn, 10)
    # The reference code's per-class loop: sum_c ||mean(real_c) - mean(syn_c)||^2.
    want = sum(((net.embed(real[4 * c:4 * c + 4]).mean(0) - net.embed(syn[2 * c:2 * c + 2]).mean(0)) ** 2).sum()
               for c in range(10))
    assert torch.allclose(got, want, rtol=1e-4)


def _cfg(**kw):
    match = dict(iterations=4, batch_real=16, checkpoint_every=2)
    match.update(kw)
    return distill_config("dm", 1, 0, **match)


def _fixed_nets_loss(images, train, k=4):
    """Matching loss of ``images`` in k fixed networks on fixed real batches (no DSA)."""
    g = torch.Generator().manual_seed(123)
    real = train.normalized(torch.cat([ix[:16] for ix in train.indices_by_class()]))
    total = 0.0
    for _ in range(k):
        net = build_model("ConvNet", 1, 10, (28, 28), generator=g)
        with torch.no_grad():
            total += DM().loss(net, real, images, 10).item()
    return total / k


def test_a_few_iterations_lower_the_matching_loss(tiny_train):
    before = match_loop(DM(), tiny_train, _cfg(iterations=0, init="noise"), device=CPU,
                        generator=torch.Generator().manual_seed(0), log=lambda m: None, progress=False)
    after = match_loop(DM(), tiny_train, _cfg(iterations=25, init="noise"), device=CPU,
                       generator=torch.Generator().manual_seed(0), log=lambda m: None, progress=False)
    assert after.labels.tolist() == list(range(10))
    lb, la = _fixed_nets_loss(before.images, tiny_train), _fixed_nets_loss(after.images, tiny_train)
    assert la < 0.7 * lb, (lb, la)


def test_resume_gives_the_same_images_as_an_uninterrupted_run(tiny_train, tmp_path):
    full = match_loop(DM(), tiny_train, _cfg(iterations=5), device=CPU, run_dir=tmp_path / "a",
                      generator=torch.Generator().manual_seed(0), log=lambda m: None, progress=False)
    match_loop(DM(), tiny_train, _cfg(iterations=3), device=CPU, run_dir=tmp_path / "b",
               generator=torch.Generator().manual_seed(0), log=lambda m: None, progress=False)
    assert json.loads((tmp_path / "b" / "checkpoint.json").read_text())["iteration"] == 3
    resumed = match_loop(DM(), tiny_train, _cfg(iterations=5), device=CPU, run_dir=tmp_path / "b",
                         resume=True, generator=torch.Generator().manual_seed(0), log=lambda m: None,
                         progress=False)
    assert torch.equal(full.images, resumed.images)
    with pytest.raises(ValueError, match="different configuration"):
        match_loop(DM(), tiny_train, _cfg(iterations=5, lr_img=0.5), device=CPU, run_dir=tmp_path / "b",
                   resume=True, generator=torch.Generator().manual_seed(0), log=lambda m: None,
                   progress=False)


class _Flaky(DM):
    """DM whose synthetic loss turns NaN, or raises Ctrl-C, at a chosen call (one call per
    image update)."""

    def __init__(self, at, what):
        self.calls, self.at, self.what = 0, at, what

    def syn_loss(self, net, means, syn, *a, **k):
        value = super().syn_loss(net, means, syn, *a, **k)
        if syn.device.type == "meta":  # the loop's FLOP count, not an iteration
            return value
        self.calls += 1
        if self.calls == self.at + 1:
            if self.what == "nan":
                return value * float("nan")
            raise KeyboardInterrupt
        return value


def _interrupt_then_resume(train, run_dir, *, at: int, iteration: int, **match):
    """Ctrl-C at syn_loss call ``at`` (no periodic checkpoints), check the checkpoint names
    ``iteration``, then --resume the same options to the end; returns the resumed output."""
    run = dict(device=CPU, log=lambda m: None, progress=False)
    with pytest.raises(KeyboardInterrupt):
        match_loop(_Flaky(at, "interrupt"), train, _cfg(**match, checkpoint_every=0), run_dir=run_dir,
                   generator=torch.Generator().manual_seed(0), **run)
    assert json.loads((run_dir / "checkpoint.json").read_text())["iteration"] == iteration
    return match_loop(DM(), train, _cfg(**match), run_dir=run_dir, resume=True,
                      generator=torch.Generator().manual_seed(0), **run)


def test_nan_stops_and_keeps_last_good_checkpoint(tiny_train, tmp_path):
    with pytest.raises(FloatingPointError, match="became nan at iteration 2.*last good images"):
        match_loop(_Flaky(2, "nan"), tiny_train, _cfg(), device=CPU, run_dir=tmp_path,
                   generator=torch.Generator().manual_seed(0), log=lambda m: None, progress=False)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["iteration"] == 2


def test_ctrl_c_checkpoints_and_resume_is_exact(tiny_train, tmp_path):
    resumed = _interrupt_then_resume(tiny_train, tmp_path / "i", at=3, iteration=3)
    full = match_loop(DM(), tiny_train, _cfg(), device=CPU, generator=torch.Generator().manual_seed(0),
                      log=lambda m: None, progress=False)
    assert torch.equal(full.images, resumed.images)


def test_inner_steps_reuse_the_real_means_and_resume_exactly(tiny_train, tmp_path):
    """inner_steps=S: S image updates per network; with S=1 the loop is the papers'. A Ctrl-C
    between two inner steps rolls the iteration back, so resume is still exact."""
    run = dict(device=CPU, log=lambda m: None, progress=False)
    one = match_loop(DM(), tiny_train, _cfg(), generator=torch.Generator().manual_seed(0), **run)
    again = match_loop(DM(), tiny_train, _cfg(inner_steps=1), generator=torch.Generator().manual_seed(0), **run)
    assert torch.equal(one.images, again.images)
    three = match_loop(DM(), tiny_train, _cfg(inner_steps=3), generator=torch.Generator().manual_seed(0), **run)
    assert not torch.equal(one.images, three.images)
    assert three.metadata["flops_per_iteration"] > one.metadata["flops_per_iteration"]
    # call 7 = iteration 2, second inner step
    resumed = _interrupt_then_resume(tiny_train, tmp_path, at=7, iteration=2, inner_steps=3)
    assert torch.equal(three.images, resumed.images)
    with pytest.raises(ValueError, match="inner_steps must be >= 1"):
        METHODS.get("dm").options({"inner_steps": 0})


def test_dm_is_registered():
    assert isinstance(METHODS.get("dm"), DM)


def test_compiled_real_embedding_matches_eager(tiny_train):
    from synthset.methods.compiled import CompiledEmbed
    from synthset.methods.matching import embed_no_grad
    template = build_model("ConvNet", 1, 10, (28, 28))
    fast = CompiledEmbed(template, CPU, chunk=64)
    x = tiny_train.normalized()[:100]
    for seed in (0, 1):  # a second fresh network reuses the compiled code
        net = build_model("ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(seed))
        assert torch.allclose(fast(net, x), embed_no_grad(net, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,layout", [("dm", "inductor"), ("datadam", "inductor"), ("datadam", "nchw")])
def test_compiled_synthetic_loss_and_gradient_match_eager(name, layout, tiny_train):
    from synthset.methods.compiled import CompiledSynLoss
    from synthset.methods.matching import class_means
    method = METHODS.get(name)
    cfg = method.options({})
    template = build_model("ConvNet", 1, 10, (28, 28))
    fast = CompiledSynLoss(template, lambda n, x: method.features(n, x, cfg),
                           lambda feats, means: method.match(
                               means, tuple(class_means(f.float(), 10) for f in feats), cfg))
    fast.layout = layout  # either layout is the same maths
    real = tiny_train.normalized(torch.cat([ix[:4] for ix in tiny_train.indices_by_class()]))
    for seed in (0, 1):  # a second fresh network reuses the compiled graphs
        net = build_model("ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(seed))
        for p in net.parameters():
            p.requires_grad_(False)
        means = method.real_means(net, real, 10, cfg)
        grads = []
        for fn in (lambda s: fast(net, means, s), lambda s: method.syn_loss(net, means, s, 10, cfg)):
            syn = torch.randn(20, 1, 28, 28, generator=torch.Generator().manual_seed(9), requires_grad=True)
            loss = fn(syn)
            loss.backward()
            grads.append((loss.detach(), syn.grad))
        assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-4)
        # Not elementwise: a pre-activation within rounding of 0 can take the other side of a
        # ReLU in a different kernel (seen: one image's gradient, 1e-3 of the total norm).
        assert (grads[0][1] - grads[1][1]).norm() < 1e-2 * grads[1][1].norm()


def test_each_compiled_loss_compiles_past_dynamo_recompile_limit():
    # Instances built from one ``def`` once shared a code object, so dynamo's per-code
    # recompile limit sent later runs in the same process to eager code.
    import torch._dynamo
    from torch._dynamo.utils import counters
    from synthset.methods.compiled import CompiledSynLoss
    template = build_model("MLP", 1, 10, (28, 28))
    syn = torch.randn(10, 1, 28, 28, requires_grad=True)
    with torch._dynamo.config.patch(recompile_limit=1):
        before = counters["stats"]["unique_graphs"]
        for k in range(3):  # new closures each time, as each distillation's prepare() makes
            fast = CompiledSynLoss(template, lambda n, x, k=k: (n.embed(x) * (k + 1),),
                                   lambda feats, means: (feats[0].mean(0) - means[0]).square().sum())
            net = build_model("MLP", 1, 10, (28, 28), generator=torch.Generator().manual_seed(k))
            fast(net, (torch.zeros(template.embed(syn).shape[1]),), syn).backward()
        assert counters["stats"]["unique_graphs"] - before == 3


def test_compiled_loop_follows_the_eager_loop(tiny_train):
    run = dict(device=CPU, log=lambda m: None, progress=False)
    start, eager, fast = (match_loop(DM(), tiny_train, _cfg(iterations=n, checkpoint_every=0, compile=c),
                                     generator=torch.Generator().manual_seed(0), **run)
                          for n, c in ((0, False), (3, False), (3, True)))
    assert fast.metadata["final_loss"] == pytest.approx(eager.metadata["final_loss"], rel=1e-3)
    # Same updates up to rounding (and the odd ReLU tie; see the test above).
    moved = (eager.images - start.images).norm()
    assert moved > 0 and (fast.images - eager.images).norm() < 2e-2 * moved


def test_herding_init_starts_from_the_herding_coreset(tiny_train):
    cfg = distill_config("dm", 2, iterations=0, init="herding", checkpoint_every=0,
                         features="pixels")
    out = match_loop(DM(), tiny_train, cfg, device=CPU, generator=torch.Generator().manual_seed(0),
                     log=lambda m: None, progress=False)
    want = METHODS.get("herding").run(tiny_train, cfg, None, device=CPU,
                                      generator=torch.Generator(), log=lambda m: None)
    assert torch.equal(out.images, want.images)
    # the run records which training images it started from: the coreset's own picks
    assert out.metadata["start_indices"] == want.metadata["indices"]


def test_a_real_start_records_its_images_and_a_noise_start_records_none(tiny_train):
    run = dict(device=CPU, generator=torch.Generator().manual_seed(0), log=lambda m: None, progress=False)
    out = match_loop(DM(), tiny_train, _cfg(iterations=0, checkpoint_every=0, init="real"), **run)
    idx = torch.tensor(out.metadata["start_indices"])
    assert torch.equal(out.images, tiny_train.normalized(idx))
    assert torch.equal(tiny_train.labels[idx], out.labels)  # class-major, as the set's labels
    # the start is the generator's first draw: a longer run records the same one
    run["generator"] = torch.Generator().manual_seed(0)
    longer = match_loop(DM(), tiny_train, _cfg(iterations=2, checkpoint_every=0, init="real"), **run)
    assert longer.metadata["start_indices"] == out.metadata["start_indices"]
    run["generator"] = torch.Generator().manual_seed(0)
    out = match_loop(DM(), tiny_train, _cfg(iterations=0, checkpoint_every=0, init="noise"), **run)
    assert "start_indices" not in out.metadata


def test_max_time_stops_early_and_on_step_sees_every_step(tiny_train):
    seen = []
    out = match_loop(DM(), tiny_train, _cfg(iterations=1000, checkpoint_every=0, max_time="0.5s"),
                     device=CPU, generator=torch.Generator().manual_seed(0), log=lambda m: None,
                     progress=False, on_step=lambda n, im, s: seen.append(n))
    assert 1 <= out.metadata["iterations"] < 1000
    assert out.metadata["stopped_by"] == "max_time"
    assert seen == list(range(1, out.metadata["iterations"] + 1))


def test_ema_update_by_hand():
    avg = torch.tensor([0.0, 2.0])
    ema_update(avg, torch.tensor([1.0, 0.0]), 0.9)
    assert torch.allclose(avg, torch.tensor([0.1, 1.8]))


def test_ema_saves_the_average_of_the_iterates_and_resumes_exactly(tiny_train, tmp_path):
    """--ema d: the trajectory is the plain loop's; the saved set is the exponential average
    of the start and the iterates. A Ctrl-C mid-run and --resume give the same average."""
    run = dict(device=CPU, log=lambda m: None, progress=False)
    iterates = []
    plain = match_loop(DM(), tiny_train, _cfg(), generator=torch.Generator().manual_seed(0),
                       on_step=lambda k, x, s: iterates.append(x.clone()), **run)
    start = match_loop(DM(), tiny_train, _cfg(iterations=0), generator=torch.Generator().manual_seed(0), **run)
    want = start.images.clone()
    for x in iterates:
        want = 0.6 * want + 0.4 * x
    averaged = match_loop(DM(), tiny_train, _cfg(ema=0.6), generator=torch.Generator().manual_seed(0), **run)
    assert torch.allclose(averaged.images, want, atol=1e-6)
    assert not torch.allclose(averaged.images, plain.images, atol=1e-3)
    resumed = _interrupt_then_resume(tiny_train, tmp_path, at=3, iteration=3, ema=0.6)
    assert torch.equal(averaged.images, resumed.images)
    with pytest.raises(ValueError, match="different configuration"):
        match_loop(DM(), tiny_train, _cfg(ema=0.9), run_dir=tmp_path, resume=True,
                   generator=torch.Generator().manual_seed(0), **run)
    # A checkpoint written before an option existed resumes: missing options take defaults.
    from synthset.engine.checkpoint import comparable
    norm = METHODS.get("dm").normalize_options
    old = _cfg(iterations=4).to_dict()
    del old["engine"]["ema"], old["engine"]["lr_schedule"]
    assert comparable(old, norm) == comparable(_cfg(iterations=4).to_dict(), norm)
    # ... and so does one saved before the engine split (a ``match`` dict, no ``options``)
    legacy = {"method": "dm", "ipc": 1, "seed": 0, "coreset": old["coreset"],
              "match": {**old["engine"], "lr_img": 1.0, "inner_steps": 1}, "datadam": {}}
    assert comparable(legacy, norm) == comparable(_cfg(iterations=4).to_dict(), norm)
    with pytest.raises(ValueError, match="ema must be in"):
        EngineConfig(ema=1.0)


def test_cosine_lr_by_hand():
    assert cosine_lr(2.0, 0, 10) == 2.0
    assert abs(cosine_lr(2.0, 5, 10) - 1.0) < 1e-12
    assert abs(cosine_lr(2.0, 10, 10)) < 1e-12
    assert abs(cosine_lr(1.0, 2, 12) - (1 + math.cos(math.pi / 6)) / 2) < 1e-12


def test_cosine_schedule_steps_and_resumes_exactly(tiny_train, tmp_path):
    """lr_schedule='cosine': step k uses lr_img * cosine_lr(k); the last step of a run is
    tiny; Ctrl-C + --resume follows the same schedule; resuming with other iterations is
    refused (they define the schedule)."""
    run = dict(device=CPU, log=lambda m: None, progress=False)
    iterates = []
    cos = match_loop(DM(), tiny_train, _cfg(lr_schedule="cosine", momentum=0.0),
                     generator=torch.Generator().manual_seed(0),
                     on_step=lambda k, x, s: iterates.append(x.clone()), **run)
    flat_iterates = []
    flat = match_loop(DM(), tiny_train, _cfg(momentum=0.0), generator=torch.Generator().manual_seed(0),
                      on_step=lambda k, x, s: flat_iterates.append(x.clone()), **run)
    assert torch.equal(iterates[0], flat_iterates[0])  # step 0: cosine_lr = lr_img
    assert not torch.equal(cos.images, flat.images)
    # Without momentum a step is -lr * grad: the last of 4 steps has lr cos(3pi/4) scale ~0.146.
    first, last = (iterates[1] - iterates[0]).norm(), (iterates[3] - iterates[2]).norm()
    assert last < first
    resumed = _interrupt_then_resume(tiny_train, tmp_path, at=2, iteration=2, lr_schedule="cosine",
                                     momentum=0.0)
    assert torch.equal(cos.images, resumed.images)
    with pytest.raises(ValueError, match="different configuration"):
        match_loop(DM(), tiny_train, _cfg(lr_schedule="cosine", momentum=0.0, iterations=8),
                   run_dir=tmp_path, resume=True, generator=torch.Generator().manual_seed(0), **run)
    with pytest.raises(ValueError, match="give --iterations"):
        EngineConfig(lr_schedule="cosine")
    with pytest.raises(ValueError, match="lr_schedule must be"):
        EngineConfig(lr_schedule="step", iterations=3)


def test_bf16_passes_follow_fp32_closely_and_auto_is_recorded(tiny_train):
    """bf16 autocast (with the norms' statistics in fp32) moves the images the way fp32 does;
    the precision each pass ran at is recorded with the set."""
    run = dict(device=CPU, log=lambda m: None, progress=False)
    start, fp32, bf16 = (match_loop(DM(), tiny_train, _cfg(iterations=n, checkpoint_every=0, precision=p),
                                    generator=torch.Generator().manual_seed(0), **run)
                         for n, p in ((0, "fp32"), (3, "fp32"), (3, "bf16")))
    moved = (fp32.images - start.images).norm()
    assert (bf16.images - fp32.images).norm() < 0.1 * moved
    assert bf16.metadata["precision"]["real"] == {"precision": "bf16", "source": "requested"}
    auto = match_loop(DM(), tiny_train, _cfg(iterations=1, checkpoint_every=0, precision="auto"),
                      generator=torch.Generator().manual_seed(0), **run)
    assert auto.metadata["precision"]["syn"]["precision"] in ("fp32", "bf16")
