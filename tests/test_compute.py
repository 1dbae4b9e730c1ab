"""The compute policy (synthset.compute): resolved precisions only, autocast built in one
place, the per-pass choice of --precision auto, and the policy a device-only call gets."""
import pytest
import torch

from synthset.compute import Compute, autocast, fixed, given, resolve
from synthset.config import TrainConfig


def test_a_policy_holds_resolved_precisions_and_builds_autocast():
    c = Compute(precision={"real": "bf16", "syn": "fp32"})
    with c.autocast("real")():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with c.autocast("syn")():
        assert not torch.is_autocast_enabled("cpu")
    assert c.precision_of("train") == "fp32"  # a pass it does not name runs the reference
    assert c.at("syn", "bf16").precision == {"real": "bf16", "syn": "bf16"}
    with pytest.raises(ValueError, match="resolved precisions only"):
        Compute(precision={"train": "auto"})
    with pytest.raises(ValueError, match="resolved to fp32 or bf16"):
        autocast(torch.device("cpu"), "auto")


def test_layout_and_placement_follow_the_policy():
    x = torch.randn(2, 3, 4, 4)
    assert Compute(channels_last=True).layout(x).is_contiguous(memory_format=torch.channels_last)
    assert Compute().layout(x) is x  # nothing to do: no copy
    net = Compute(channels_last=True).place(torch.nn.Conv2d(3, 4, 3))
    assert net.weight.is_contiguous(memory_format=torch.channels_last)


def test_a_device_only_call_gets_its_configs_policy_untimed():
    c = given(None, torch.device("cpu"), TrainConfig(precision="auto", channels_last=True))
    assert c.precision == {"train": "fp32"} and c.channels_last and not c.choices
    assert given(None, None, TrainConfig(precision="bf16")).precision_of("train") == "bf16"
    chosen = Compute(precision={"train": "bf16"})
    assert given(chosen, torch.device("cpu"), TrainConfig()) is chosen
    assert fixed(torch.device("cpu"), "auto", kinds=("real", "syn")).precision == {"real": "fp32", "syn": "fp32"}


def test_resolve_times_each_pass_or_takes_what_was_asked(monkeypatch):
    calls = []

    def bench(p):
        calls.append(p)
        return lambda: None
    c = resolve(torch.device("cpu"), "fp32", passes={"train": ("train", "x", bench)}, log=lambda m: None)
    assert c.precision == {"train": "fp32"} and c.choices["train"]["source"] == "requested"
    assert not calls  # an explicit precision is not timed
    # auto where a pass may not use bf16: fp32 without timing
    c = resolve(torch.device("cpu"), "auto", passes={"syn": ("s", "x", bench)},
                allow_bf16={"syn": False}, log=lambda m: None)
    assert c.precision == {"syn": "fp32"} and not calls


def test_a_runs_layout_candidates_each_run_in_their_own_layout_when_timed_interleaved(monkeypatch, tmp_path):
    """resolve_compute times the compiled synthetic pass in both layouts, interleaved; the
    layout is the knob's state when a step runs, so each candidate's step must set it."""
    import time
    from types import SimpleNamespace
    from synthset import autotune
    from synthset.engine.runner import resolve_compute
    monkeypatch.setenv("SYNTHSET_CACHE", str(tmp_path))
    monkeypatch.setattr(autotune, "cpu", lambda: {"model": "test CPU", "flags": ["avx512_bf16"]})
    knob, seen = SimpleNamespace(layout="inductor"), []

    class Method:
        name, bf16_auto = "fake", True

        def layout_knob(self, ctx):
            return knob

        def bench(self, ctx, kind, precision):
            def step():
                seen.append((kind, knob.layout))
                time.sleep(0.001 if knob.layout == "nchw" else 0.006)
            return step
    ctx = SimpleNamespace(engine=SimpleNamespace(model="ConvNet", compile=True, channels_last=False,
                                                 precision="auto"),
                          info=SimpleNamespace(channels=1, size=(28, 28)), classes=10, n_real=64,
                          n_syn=10, device=torch.device("cpu"),
                          world=SimpleNamespace(is_main=True, broadcast=lambda x: x))
    out = resolve_compute(Method(), ctx, log=lambda m: None)
    layouts = [layout for kind, layout in seen[-10:]]  # the layout timing: 2 + 2 warm-up, 3 rounds
    assert layouts == ["inductor"] * 2 + ["nchw"] * 2 + ["inductor", "nchw"] * 3
    assert out["syn"]["layout"] == "nchw" and knob.layout == "nchw"
    assert ctx.compute.precision["syn"] == out["syn"]["precision"]
