"""The protocol on tiny real data: learning happens, results are reproducible, and an
interrupted evaluation resumes from its log."""
import json
import re
import time

import pytest
import torch

from synthset.config import EvalConfig, TrainConfig
from synthset.evaluate import evaluate, evaluate_run, format_table
from synthset.training import train_network
from synthset.models import build_model


def test_training_on_real_images_beats_chance_by_far(tiny_train, tiny_test):
    cfg = TrainConfig(epochs=12, augment=False)
    r = evaluate_run("ConvNet", tiny_train.normalized(), tiny_train.labels, tiny_test, cfg, seed=0,
                     run=0, device=torch.device("cpu"), progress=False)
    assert r.accuracy > 60, r  # 300 images, 12 epochs; chance is 10%
    assert r.steps == 12 * 2  # 300 images at batch 256 -> 2 steps per epoch


def test_same_seed_same_accuracy(tiny_train, tiny_test):
    cfg = TrainConfig(epochs=2)
    x, y = tiny_train.normalized()[:50], tiny_train.labels[:50]
    a = evaluate_run("ConvNet", x, y, tiny_test, cfg, seed=3, run=1, device=torch.device("cpu"), progress=False)
    b = evaluate_run("ConvNet", x, y, tiny_test, cfg, seed=3, run=1, device=torch.device("cpu"), progress=False)
    assert a.accuracy == b.accuracy and a.final_train_loss == b.final_train_loss


def test_lr_decays_at_half():
    net = build_model("MLP", 1, 10, (28, 28))
    seen = []
    cfg = TrainConfig(epochs=4, augment=False, lr=0.1)
    orig = torch.optim.SGD.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.SGD.step = spy
    try:
        from synthset.data import DatasetInfo
        info = DatasetInfo("x", 1, (28, 28), tuple("0123456789"), (0.0,), (1.0,))
        train_network(net, torch.randn(8, 1, 28, 28), torch.arange(8), info, cfg,
                      generator=torch.Generator(), device=torch.device("cpu"), progress=False)
    finally:
        torch.optim.SGD.step = orig
    assert [round(v, 6) for v in seen] == [0.1, 0.1, 0.01, 0.01]


def test_eval_json_format_and_resume(tmp_path, tiny_train, tiny_test):
    idx = torch.cat([torch.nonzero(tiny_train.labels == c)[:4, 0] for c in range(10)])  # every class
    x, y = tiny_train.normalized()[idx], tiny_train.labels[idx]
    cfg = EvalConfig(models=("ConvNet",), runs=2, train=TrainConfig(epochs=2))
    rep = evaluate(x, y, tiny_test, cfg, device=torch.device("cpu"), out_dir=tmp_path, progress=False,
                   log=lambda m: None)
    saved = json.loads((tmp_path / "eval.json").read_text())
    m = saved["models"]["ConvNet"]
    assert set(m) >= {"mean", "std", "runs", "epochs"} and len(m["runs"]) == 2 and m["epochs"] == 2
    assert abs(m["mean"] - sum(m["runs"]) / 2) < 1e-9
    assert m["flops"]["train_total"] == m["flops"]["train_per_image_step"] * 40 * 2
    assert "ConvNet" in format_table(rep)
    # A third run is asked for: the first two come from the log, only one is trained.
    lines = (tmp_path / "eval_runs.jsonl").read_text().splitlines()
    assert len(lines) == 2
    logged = []
    cfg3 = EvalConfig(models=("ConvNet",), runs=3, train=TrainConfig(epochs=2))
    rep3 = evaluate(x, y, tiny_test, cfg3, device=torch.device("cpu"), out_dir=tmp_path, progress=False,
                    log=logged.append)
    assert len(logged) == 1 and rep3["models"]["ConvNet"]["runs"][:2] == m["runs"]
    # Peak memory is the largest over the sessions: a run logged by a process that peaked
    # higher (here: edited to 1e6 MiB) keeps its peak when a later session resumes.
    recs = [json.loads(line) for line in (tmp_path / "eval_runs.jsonl").read_text().splitlines()]
    assert all(r["peak_memory_mib"] > 0 for r in recs)
    recs[0]["peak_memory_mib"] = 1e6
    (tmp_path / "eval_runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    rep3 = evaluate(x, y, tiny_test, cfg3, device=torch.device("cpu"), out_dir=tmp_path, progress=False,
                    log=logged.append)
    assert rep3["peak_memory_mib"] == 1e6 and len(logged) == 1
    # Per-class recall: one entry per class name, whose mean is the balanced accuracy.
    cr = rep3["models"]["ConvNet"]["class_recall"]
    assert list(cr) == list(tiny_test.info.class_names)
    for r in range(3):
        mean_r = sum(v["runs"][r] for v in cr.values()) / len(cr)
        assert abs(mean_r - rep3["models"]["ConvNet"]["balanced_accuracy"]["runs"][r]) < 1e-6
    # A log written before class recall was recorded still resumes; the summary then omits it.
    for r in recs:
        r.pop("class_recall")
    (tmp_path / "eval_runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    old = evaluate(x, y, tiny_test, cfg3, device=torch.device("cpu"), out_dir=tmp_path, progress=False,
                   log=logged.append)
    assert "class_recall" not in old["models"]["ConvNet"] and len(logged) == 1


def test_parallel_workers_give_the_same_runs(tmp_path, tiny_train, tiny_test, capfd):
    """...and report their epochs as lines (bars from two processes would garble each other)."""
    x, y = tiny_train.normalized()[:20], tiny_train.labels[:20]
    cfg = EvalConfig(models=("MLP",), runs=3, train=TrainConfig(epochs=2))
    seq = evaluate(x, y, tiny_test, cfg, device=torch.device("cpu"), progress=False, log=lambda m: None)
    capfd.readouterr()
    par = evaluate(x, y, tiny_test, cfg, device=torch.device("cpu"), progress=True, log=lambda m: None,
                   workers=2, out_dir=tmp_path)
    err = capfd.readouterr().err
    for run in range(3):
        for ep in (1, 2):
            assert re.search(rf"MLP run {run}: epoch {ep}/2, train loss \d+\.\d{{3}}", err), err
    # Same seeds per run; thread counts differ, so allow float-reduction noise only.
    for a, b in zip(seq["models"]["MLP"]["runs"], par["models"]["MLP"]["runs"]):
        assert abs(a - b) <= 0.5
    assert len((tmp_path / "eval_runs.jsonl").read_text().splitlines()) == 3


def test_last_partial_round_of_parallel_runs_gets_the_free_cores():
    from synthset.evaluate import task_threads
    assert task_threads(2, 2, 3) == [1, 1, 2]
    assert task_threads(2, 2, 4) == [1, 1, 1, 1]  # two full rounds
    assert task_threads(16, 4, 6) == [4, 4, 4, 4, 8, 8]
    assert task_threads(2, 2, 1) == [2]
    assert task_threads(1, 2, 3) == [1, 1, 1]


def test_test_batch_changes_memory_not_results(tiny_train, tiny_test):
    """--batch-test only bounds memory (224 px needs small test batches): same scores."""
    from synthset.evaluate import test_network as score_network
    torch.manual_seed(0)
    net = build_model("ConvNet", 1, 10, (28, 28))
    a = score_network(net, tiny_test, device=torch.device("cpu"), batch=512)
    b = score_network(net, tiny_test, device=torch.device("cpu"), batch=7)
    assert a["accuracy"] == b["accuracy"] and a["balanced_accuracy"] == b["balanced_accuracy"]
    with pytest.raises(ValueError, match="batch_test must be >= 1"):
        TrainConfig(batch_test=0)


def test_dihedral_changes_training_and_joins_the_run_key_only_when_set(tiny_train, tiny_test):
    from synthset.evaluate import _config_key
    # the key a default config had before the field existed: existing run logs still resume
    # (evaluate keys runs by the precision auto resolved to, fp32 where bf16 is not native)
    fp32 = TrainConfig(precision="fp32")
    assert _config_key(EvalConfig(train=fp32), 100) == "a8ffe56cc8085de2"
    assert _config_key(EvalConfig(train=TrainConfig(precision="fp32", dihedral=True)), 100) != "a8ffe56cc8085de2"
    x, y = tiny_train.normalized()[:50], tiny_train.labels[:50]
    runs = [evaluate_run("MLP", x, y, tiny_test, TrainConfig(epochs=2, augment=False, dihedral=d),
                         seed=0, run=0, device=torch.device("cpu"), progress=False)
            for d in (False, True, True)]
    assert runs[1].final_train_loss != runs[0].final_train_loss  # the images the net saw differ
    assert runs[1].final_train_loss == runs[2].final_train_loss  # and the draws are seeded


def test_tta_averages_the_softmax_of_the_eight_views_and_keeps_the_plain_scores(tiny_test):
    from synthset import augment
    from synthset.evaluate import test_network as score_network
    torch.manual_seed(0)
    net = build_model("ConvNet", 1, 10, (28, 28)).eval()
    cpu = torch.device("cpu")
    plain = score_network(net, tiny_test, device=cpu)
    tta = score_network(net, tiny_test, device=cpu, tta=True, batch=64)
    # the identity view scored alone is exactly the protocol's plain score
    for m in ("accuracy", "balanced_accuracy", "class_recall"):
        assert tta["single_view"][m] == plain[m]
    with torch.no_grad():  # by hand: mean softmax over the 8 symmetries, then argmax
        x = tiny_test.normalized()
        prob = sum(torch.softmax(net(v), 1) for v in augment.dihedral_views(x)) / 8
    want = (prob.argmax(1) == tiny_test.labels).float().mean().item()
    assert tta["accuracy"] == pytest.approx(want, abs=1.5 / len(tiny_test))  # one tie at most
    assert tta["accuracy"] != plain["accuracy"]  # digits are not rotation-invariant


def test_tta_of_a_rotation_invariant_net_equals_its_single_view(tiny_test):
    from synthset.evaluate import test_network as score_network
    torch.manual_seed(0)
    # global average pooling first: the same output for every turn and mirror of the input
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(1, 10))
    out = score_network(net, tiny_test, device=torch.device("cpu"), tta=True)
    assert out["accuracy"] == out["single_view"]["accuracy"]
    assert out["class_recall"] == out["single_view"]["class_recall"]


def test_tta_joins_the_run_key_only_when_set_and_the_report_shows_both(tmp_path, tiny_train, tiny_test):
    from synthset.evaluate import _config_key
    assert _config_key(EvalConfig(train=TrainConfig(tta=True)), 100) != "a8ffe56cc8085de2"
    x, y = tiny_train.normalized()[:50], tiny_train.labels[:50]
    cfg = EvalConfig(models=("MLP",), runs=2, train=TrainConfig(epochs=2, augment=False, tta=True))
    rep = evaluate(x, y, tiny_test, cfg, device=torch.device("cpu"), out_dir=tmp_path, progress=False,
                   log=lambda s: None)
    m = rep["models"]["MLP"]
    logged = [json.loads(line) for line in (tmp_path / "eval_runs.jsonl").read_text().splitlines()]
    assert m["single_view"]["accuracy"]["runs"] == [r["single_view"]["accuracy"] for r in logged]
    assert m["runs"] == [r["accuracy"] for r in logged]
    assert "1 view" in format_table(rep)
    # resumed from the log: the plain scores come back too
    again = evaluate(x, y, tiny_test, cfg, device=torch.device("cpu"), out_dir=tmp_path, progress=False,
                     log=lambda s: s.startswith("warning:") or pytest.fail(f"re-ran a logged run: {s}"))
    assert again["models"]["MLP"]["single_view"] == m["single_view"]


def test_auto_precision_is_fp32_without_native_bf16_and_keys_runs_like_fp32(monkeypatch, tiny_train, tiny_test, tmp_path):
    from synthset import autotune
    from synthset.evaluate import evaluate
    monkeypatch.setattr(autotune, "cpu", lambda: {"model": "test CPU", "flags": ["avx2", "fma"]})
    cpu = torch.device("cpu")
    assert not autotune.native_bf16(cpu)
    x, y = tiny_train.normalized()[:50], tiny_train.labels[:50]
    cfg = EvalConfig(models=("MLP",), runs=1, train=TrainConfig(epochs=2, augment=False))
    rep = evaluate(x, y, tiny_test, cfg, device=cpu, out_dir=tmp_path, progress=False, log=lambda m: None)
    assert rep["models"]["MLP"]["precision"] == {"precision": "fp32", "source": "no native bf16"}
    # an explicit fp32 evaluation of the same set finds the auto run and trains nothing new
    fixed = EvalConfig(models=("MLP",), runs=1, train=TrainConfig(epochs=2, augment=False, precision="fp32"))
    again = evaluate(x, y, tiny_test, fixed, device=cpu, out_dir=tmp_path, progress=False, log=lambda m: None)
    assert again["models"]["MLP"]["runs"] == rep["models"]["MLP"]["runs"]
    assert len((tmp_path / "eval_runs.jsonl").read_text().splitlines()) == 1


def test_auto_precision_times_both_where_bf16_is_native_and_caches_the_choice(monkeypatch, tmp_path):
    from synthset import autotune
    monkeypatch.setenv("SYNTHSET_CACHE", str(tmp_path))
    monkeypatch.setattr(autotune, "cpu", lambda: {"model": "test CPU", "flags": ["avx512f", "avx512_bf16"]})
    cpu = torch.device("cpu")
    calls = []

    def bench(p):
        calls.append(p)
        return lambda: time.sleep(0.002 if p == "bf16" else 0.02)
    got = autotune.choose("train", "MLP 1x28x28", cpu, "auto", bench, log=lambda m: None)
    assert got["precision"] == "bf16" and got["source"] == "timed" and calls == ["fp32", "bf16"]
    again = autotune.choose("train", "MLP 1x28x28", cpu, "auto", bench, log=lambda m: None)
    assert again["precision"] == "bf16" and again["source"] == "cache" and len(calls) == 2
    assert autotune.choose("train", "MLP 1x28x28", cpu, "fp32", bench)["precision"] == "fp32"
    assert json.loads((tmp_path / "autotune.json").read_text())


def test_compiled_pass_layout_is_timed_on_the_cpu_cached_and_left_to_inductor_on_a_gpu(monkeypatch, tmp_path):
    from synthset import autotune
    monkeypatch.setenv("SYNTHSET_CACHE", str(tmp_path))
    cpu = torch.device("cpu")
    calls = []

    def bench(layout):
        calls.append(layout)
        return lambda: time.sleep(0.002 if layout == "nchw" else 0.02)
    got = autotune.choose_layout("distill-syn-layout", "datadam x", cpu, bench, log=lambda m: None)
    assert got["layout"] == "nchw" and got["layout_source"] == "timed" and calls == ["inductor", "nchw"]
    assert got["layout_seconds"]["inductor"] > got["layout_seconds"]["nchw"]
    again = autotune.choose_layout("distill-syn-layout", "datadam x", cpu, bench, log=lambda m: None)
    assert again["layout"] == "nchw" and again["layout_source"] == "cache" and len(calls) == 2
    gpu = autotune.choose_layout("distill-syn-layout", "datadam x", torch.device("cuda"), bench)
    assert gpu["layout"] == "inductor" and len(calls) == 2


def test_autotune_interleaves_the_candidates_so_load_starting_midway_does_not_pick_the_slower(monkeypatch, tmp_path):
    # another process starts after the 6th timed call and slows every call 5x from then on:
    # timed one after the other, bf16 (twice as fast) would be measured under the load alone
    # and lose to fp32; interleaved, both have calls before it
    from synthset import autotune
    monkeypatch.setenv("SYNTHSET_CACHE", str(tmp_path))
    monkeypatch.setattr(autotune, "cpu", lambda: {"model": "test CPU", "flags": ["avx512_bf16"]})
    order = []

    def bench(p):
        def step():
            order.append(p)
            time.sleep((0.004 if p == "bf16" else 0.008) * (5 if len(order) > 6 else 1))
        return step
    got = autotune.choose("train", "x", torch.device("cpu"), "auto", bench, log=lambda m: None)
    assert order[4:8] == ["fp32", "bf16", "fp32", "bf16"]  # after the 2 + 2 warm-up calls
    assert got["precision"] == "bf16"
    assert got["seconds"]["bf16"] < 0.015 and got["seconds"]["fp32"] < 0.03


def _trained(x, y, info, cfg, **kw):
    """A ConvNet initialised and trained from one seeded generator, as evaluate_run does."""
    g = torch.Generator().manual_seed(5)
    net = build_model("ConvNet", 1, 10, (28, 28), generator=g)
    res = train_network(net, x, y, info, cfg, generator=g, device=torch.device("cpu"),
                        progress=False, **kw)
    return net, res


def test_an_interrupted_training_continues_from_its_checkpoint_exactly(tmp_path, tiny_train):
    x, y = tiny_train.normalized()[:48], tiny_train.labels[:48]
    cfg = TrainConfig(epochs=4, batch_size=16)  # 3 shuffled, DSA-augmented steps per epoch
    whole, res = _trained(x, y, tiny_train.info, cfg)
    ckpt = tmp_path / "run.pt"

    def stop_after_second_epoch(ep, loss):
        if ep == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _trained(x, y, tiny_train.info, cfg, checkpoint=ckpt, checkpoint_every=0.0,
                 on_epoch=stop_after_second_epoch)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    resumed, res2 = _trained(x, y, tiny_train.info, cfg, checkpoint=ckpt, checkpoint_every=0.0)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert res2["steps"] == res["steps"] == 12 and res2["final_train_loss"] == res["final_train_loss"]
    # the last epoch writes no checkpoint: the one left is the one it resumed from
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2


def test_a_corrupt_training_checkpoint_is_named_with_what_to_do(tmp_path, tiny_train):
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"run\.pt cannot be read.*delete it"):
        _trained(tiny_train.normalized()[:16], tiny_train.labels[:16], tiny_train.info,
                 TrainConfig(epochs=2), checkpoint=ckpt)


def test_evaluate_continues_the_run_in_progress_and_removes_its_checkpoint(monkeypatch, tmp_path,
                                                                          tiny_train, tiny_test):
    import synthset.training as training
    idx = torch.cat([torch.nonzero(tiny_train.labels == c)[:3, 0] for c in range(10)])
    x, y = tiny_train.normalized()[idx], tiny_train.labels[idx]
    cfg = EvalConfig(models=("ConvNet",), runs=1, train=TrainConfig(epochs=3, batch_size=16))
    quiet = dict(device=torch.device("cpu"), progress=False, log=lambda m: None)
    whole = evaluate(x, y, tiny_test, cfg, out_dir=tmp_path / "whole", **quiet)
    assert not (tmp_path / "whole" / "checkpoints").exists()

    monkeypatch.setitem(training.train_network.__kwdefaults__, "checkpoint_every", 0.0)
    save = training._save_progress

    def save_then_stop(*a, **k):  # Ctrl-C right after the first epoch's state is saved
        save(*a, **k)
        raise KeyboardInterrupt
    monkeypatch.setattr(training, "_save_progress", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        evaluate(x, y, tiny_test, cfg, out_dir=tmp_path / "cut", **quiet)
    [ckpt] = (tmp_path / "cut" / "checkpoints").iterdir()
    assert ckpt.name.endswith("-ConvNet-run0.pt")
    assert torch.load(ckpt, weights_only=True)["epoch"] == 0

    monkeypatch.setattr(training, "_save_progress", save)
    resumed = evaluate(x, y, tiny_test, cfg, out_dir=tmp_path / "cut", **quiet)
    assert resumed["models"]["ConvNet"]["runs"] == whole["models"]["ConvNet"]["runs"]
    assert not (tmp_path / "cut" / "checkpoints").exists()
