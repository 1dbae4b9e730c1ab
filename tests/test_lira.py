"""LiRA at scale (synthset.lira): the shadow split, the per-example likelihood ratio against a
hand computation, TPR at a fixed FPR with a known answer, the query views, canary exposure,
and a tiny attack end to end that resumes pipeline by pipeline."""
import json
import math

import pytest
import torch

from synthset.cli import main
from safetensors.torch import load_file

from synthset.lira import (LiraConfig, attack, canary_exposure, lira_scores, report, roc_on_grid,
                           shadow_masks, start_exposure, views)


def test_each_example_is_in_exactly_half_of_the_pipelines():
    keep = shadow_masks(1000, 16, seed=3)
    assert keep.shape == (16, 1000)
    assert (keep.sum(0) == 8).all()  # every example: in 8 of 16
    assert abs(float(keep.double().mean(1).mean()) - 0.5) < 1e-9
    assert 400 < int(keep[0].sum()) < 600  # each pipeline: about half the pool
    assert torch.equal(keep, shadow_masks(1000, 16, seed=3))


def _logpdf(x, mu, var):
    return -0.5 * (x - mu) ** 2 / var - 0.5 * math.log(2 * math.pi * var)


def test_online_and_offline_scores_match_a_hand_computation():
    # 4 pipelines, 1 example, 1 view; target 0 is in; its shadows 1 (in), 2 (in)... see keep
    phi = torch.tensor([[[2.0]], [[1.0]], [[3.0]], [[-1.0]]])
    keep = torch.tensor([[True], [True], [False], [False]])
    # a second example so the pooled variance has two examples with two shadows each side
    phi = torch.cat([phi, torch.tensor([[[0.5]], [[0.0]], [[1.0]], [[-2.0]]])], 1)
    keep = torch.cat([keep, torch.tensor([[False], [True], [True], [False]])], 1)
    s = lira_scores(phi, keep)
    # target 0, example 0: in-shadows {1}: one value -> the pooled in-variance; out {2, 3}
    mu_out, var_out = 1.0, 4.0  # values 3 and -1
    # pooled in-variance for target 0: examples whose in-shadows (leaving 0 out) number >= 2:
    # example 1 has in-shadows {1, 2}: values 0 and 1 -> variance 0.25
    var_in = 0.25
    want = _logpdf(2.0, 1.0, var_in) - _logpdf(2.0, mu_out, var_out)
    assert float(s["online"][0, 0]) == pytest.approx(want, rel=1e-9)
    assert float(s["offline"][0, 0]) == pytest.approx((2.0 - mu_out) / 2.0, rel=1e-9)
    # fixed variance: both Gaussians take the variance pooled over examples
    f = lira_scores(phi, keep, fixed_variance=True)
    # target 0, out-shadows: example 0 {2, 3} var 4; example 1 {3} (one): pooled = 4
    assert float(f["offline"][0, 0]) == pytest.approx((2.0 - 1.0) / 2.0, rel=1e-9)


def test_tpr_at_fixed_fpr_on_a_known_score_distribution():
    non = torch.arange(10000, dtype=torch.float64)  # non-members 0 .. 9999
    members = torch.cat([torch.full((300,), 1e6), torch.full((700,), -1.0)])  # 30% far above
    scores = torch.cat([members, non])
    is_member = torch.cat([torch.ones(1000), torch.zeros(10000)]).long()
    r = report(scores, is_member, rounds=50)
    for fpr in ("0.01", "0.001", "0.0001"):
        assert r[f"tpr_at_{fpr}_fpr"] == pytest.approx(0.3)
        lo, hi = r[f"tpr_at_{fpr}_fpr_ci"]
        assert lo <= 0.3 <= hi and hi - lo < 0.1
    assert r["fpr_0.0001_resolvable"] and r["non_members"] == 10000
    assert r["auc"] == pytest.approx(0.3 + 0.7 * 0.0)  # members below every non-member


def test_the_stored_roc_spans_the_resolvable_fprs_and_agrees_with_tpr_at_fpr():
    non = torch.arange(10000, dtype=torch.float64)
    members = torch.cat([torch.full((300,), 1e6), torch.full((700,), -1.0)])
    scores = torch.cat([members, non])
    is_member = torch.cat([torch.ones(1000), torch.zeros(10000)]).long()
    roc = roc_on_grid(scores, is_member, points=5)
    assert roc["fpr"][0] == pytest.approx(1e-4) and roc["fpr"][-1] == pytest.approx(1.0)
    assert roc["fpr"] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])  # even in log
    # 30% of members above every non-member; the rest only once every non-member is flagged
    assert roc["tpr"][:4] == pytest.approx([0.3] * 4) and roc["tpr"][-1] == pytest.approx(1.0)


def test_query_views_shift_by_one_pixel_with_zero_fill():
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4) + 1
    v = views(x, 3)
    assert torch.equal(v[0], x)
    assert torch.equal(v[1][..., :, 1:], x[..., :, :-1]) and (v[1][..., :, 0] == 0).all()
    assert torch.equal(v[2][..., 1:, :], x[..., :-1, :]) and (v[2][..., 0, :] == 0).all()


def test_canary_exposure_counts_the_in_canaries_above_the_ordinary_threshold():
    keep = torch.tensor([[True, False, True, False, True, False]] * 2)
    canary = torch.tensor([True, True, False, False, False, False])
    scores = torch.tensor([[9.0, 0.0, 1.0, 0.5, 0.2, 0.1]] * 2)
    e = canary_exposure(scores, keep, canary, fpr=0.0)
    # ordinary non-members score 0.5 and 0.1: the threshold is 0.5; the in-canary (9) is above
    assert e["canaries_flagged"] == 1.0 and e["members_flagged"] == 0.5
    assert e["canary_auc"] == 1.0


def test_start_exposure_splits_the_members_flagged_by_whether_the_set_started_from_them():
    keep = torch.tensor([[True, True, True, True, False, False, False, False]])
    start = torch.tensor([[True, True, False, False, False, False, False, False]])
    scores = torch.tensor([[5.0, 4.0, 3.0, 0.1, 0.4, 0.3, 0.2, 0.0]])
    e = start_exposure(scores, keep, start, fpr=0.0)
    # the highest non-member scores 0.4: both starts lie above it, one of the two other members
    assert (e["start_members"], e["start_flagged"], e["other_members"], e["other_flagged"]) == (2, 1.0, 2, 0.5)


def test_a_tiny_attack_runs_resumes_and_reports(tmp_path, shared_root, capsys):
    run = tmp_path / "rand"
    assert main(["distill", "--method", "random", "--ipc", "2", "--data-root", str(shared_root),
                 "--out", str(run), "--device", "cpu"]) == 0
    argv = ["attack", str(run), "--kind", "random", "--shadows", "4", "--pool", "60",
            "--epochs", "2", "--canaries", "4", "--device", "cpu", "--out", str(tmp_path / "lira")]
    assert main(argv) == 0
    rep = json.loads((tmp_path / "lira" / "lira.json").read_text())
    assert rep["pairs"] == 240 and rep["online"]["members"] == 120
    assert rep["variances"] == "per-example" and rep["online"]["examples"] == 60
    assert rep["canaries"]["canaries"] == 4 and 0 < rep["set_images"] <= 20
    # a random real subset holds its members' images: an in-canary can be in the set itself
    assert rep["canaries"]["nn_distance_in"] <= rep["canaries"]["nn_distance_out"]
    assert len(rep["roc"]["online"]["tpr"]) == len(rep["roc"]["online"]["fpr"]) == 25
    assert (tmp_path / "lira" / "lira_roc.png").exists() and (tmp_path / "lira" / "lira_exposed.png").exists()
    # a random subset shows its images as they are: each pipeline's set images are its starts
    st = rep["starts"]["online"]
    made = sum(json.loads((tmp_path / "lira" / f"shadow-{s:03d}" / "pipeline.json").read_text())["set_images"]
               for s in range(4))
    assert st["start_members"] == made and st["start_members"] + st["other_members"] == 120
    start = load_file(str(tmp_path / "lira" / "shadow-000" / "phi.safetensors"))["start"].bool()
    seed = json.loads((tmp_path / "lira" / "config.json").read_text())["lira"]["seed"]
    assert not (start & ~shadow_masks(60, 4, seed + 1)[0]).any()  # the pool's halves: starts are members
    capsys.readouterr()
    # a folder made before an option existed (here the training's cutmix) still resumes
    held = json.loads((tmp_path / "lira" / "config.json").read_text())
    del held["train"]["cutmix"]
    (tmp_path / "lira" / "config.json").write_text(json.dumps(held))
    assert main(argv) == 0  # every pipeline done: nothing is trained again
    assert "pipeline 1/4" not in capsys.readouterr().out
    assert json.loads((tmp_path / "lira" / "lira.json").read_text())["online"] == rep["online"]
    # the variance estimate only rescores: the same folder, both estimates in lira.json
    assert main(argv + ["--fixed-variance"]) == 0
    pooled = json.loads((tmp_path / "lira" / "lira.json").read_text())
    assert pooled["variances"] == "pooled" and pooled["other_variances"]["online"] == rep["online"]
    assert "pipeline 1/4" not in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"other settings \(pool\)"):
        attack(run, LiraConfig(kind="random", shadows=4, pool=80, epochs=2, canaries=4),
               out=tmp_path / "lira", device=torch.device("cpu"))
    with pytest.raises(ValueError, match="shadows must be >= 2"):
        LiraConfig(shadows=1)
    # two worker processes make the same pipelines (up to the threads' float rounding)
    assert main(argv[:-2] + ["--out", str(tmp_path / "lira2"), "--workers", "2"]) == 0
    for s in range(4):
        a, b = (load_file(str(tmp_path / d / f"shadow-{s:03d}" / "phi.safetensors"))["phi"]
                for d in ("lira", "lira2"))
        assert torch.allclose(a, b, atol=1e-3)


def test_dp_sgd_pipelines_record_the_accountants_epsilon(tmp_path, shared_root):
    pytest.importorskip("opacus")
    run = tmp_path / "rand"
    assert main(["distill", "--method", "random", "--ipc", "2", "--data-root", str(shared_root),
                 "--out", str(run), "--device", "cpu"]) == 0
    # every pipeline remakes the recipe: a results folder whose tensors were not kept will do
    (run / "synthetic.safetensors").unlink()
    assert main(["attack", str(run), "--kind", "full", "--dp-epsilon", "8", "--shadows", "2",
                 "--pool", "40", "--epochs", "1", "--views", "1", "--device", "cpu",
                 "--out", str(tmp_path / "dp")]) == 0
    rep = json.loads((tmp_path / "dp" / "lira.json").read_text())
    assert rep["dp"]["target_epsilon"] == 8.0 and 0 < rep["dp"]["epsilon_min"] <= rep["dp"]["epsilon"] <= 8.0 + 1e-6
    first = json.loads((tmp_path / "dp" / "shadow-000" / "pipeline.json").read_text())
    assert rep["set_images"] == first["members"]  # full: a pipeline trains on all its members
    assert first["dp"]["epsilon"] <= 8.0 + 1e-6 and first["dp"]["noise_multiplier"] > 0
