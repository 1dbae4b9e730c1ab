"""The memorisation audit: distances and SSIM against hand computations, near copies found
where they are, and clear errors on bad input."""
import json

import pytest
import torch

from synthset.audit import AuditConfig, audit, memorisation, near_copy_fraction, nearest, ssim
from synthset.cli import main
from synthset.data.base import DataError


def test_nearest_matches_a_brute_force_search():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 3, 4, 4, generator=g), torch.randn(50, 3, 4, 4, generator=g)
    d, i = nearest(a, b, chunk=8)  # several chunks
    full = torch.cdist(a.flatten(1).double(), b.flatten(1).double())
    assert torch.equal(i, full.argmin(1))
    assert torch.allclose(d, full.min(1).values, atol=1e-9)
    d0, i0 = nearest(b[[3, 17]], b)  # an exact copy is at distance 0
    assert d0.tolist() == [0.0, 0.0] and i0.tolist() == [3, 17]


def test_ssim_against_a_hand_computation_with_one_window():
    """With the window as large as the image, SSIM is one evaluation of Wang et al.'s Eq. 13
    under the Gaussian weights; computed here by hand."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(1, 1, 5, 5, generator=g).double(), torch.rand(1, 1, 5, 5, generator=g).double()
    r = torch.arange(5, dtype=torch.float64) - 2
    w = torch.exp(-r ** 2 / (2 * 1.5 ** 2))
    w = (w[:, None] * w[None, :]) / (w.sum() ** 2)
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * x * x).sum() - mx ** 2, (w * y * y).sum() - my ** 2
    cxy = (w * x * y).sum() - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    want = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    assert ssim(x, y, window=5).item() == pytest.approx(want.item(), abs=1e-12)
    assert ssim(x, x, window=5).item() == pytest.approx(1.0)
    big = torch.rand(2, 3, 28, 28, generator=g)
    assert torch.allclose(ssim(big, big), torch.ones(2, dtype=torch.float64))
    assert (ssim(big, torch.rand(2, 3, 28, 28, generator=g)) < 0.2).all()


def test_near_copy_fraction_uses_the_baselines_first_percentile():
    base = torch.arange(1, 101, dtype=torch.float64)  # quantile 0.01 of 1..100 = 1.99
    frac, thr = near_copy_fraction(torch.tensor([0.5, 1.5, 2.5, 50.0]), base)
    assert thr == pytest.approx(1.99) and frac == 0.5


def test_memorisation_finds_copies_and_measures_drift(tiny_train, tiny_test):
    real = tiny_train.normalized()
    copies = real[:10].clone()
    noise = torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2
    held = tiny_test.normalized()[:100]
    got = memorisation(torch.cat([copies, noise]), tiny_train, held, start=torch.cat([copies, copies]))
    assert got["pixel"]["near_copy_fraction"] == 0.5  # the 10 copies, not the noise
    assert got["nearest_train_index"][:10] == list(range(10))
    assert got["pixel_distances"][:10] == [0.0] * 10
    assert got["ssim_to_nearest"]["p99"] == pytest.approx(1.0)
    assert got["drift_from_start"]["relative_rms"] > 0.5


def test_audit_of_a_coreset_run_and_its_report_section(tmp_path, shared_root, capsys):
    run = tmp_path / "herd"
    assert main(["distill", "--method", "random", "--ipc", "2", "--out", str(run),
                 "--data-root", str(shared_root)]) == 0
    assert main(["audit", str(run), "--held-out", "200", "--no-features", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "near copies 100.0%" in out  # a random real subset is its own training images
    rep = json.loads((run / "audit.json").read_text())
    assert rep["memorisation"]["pixel"]["synthetic_to_train"]["p99"] == 0.0
    assert (run / "audit_pairs.png").exists() and rep["membership"] is None
    assert main(["compare", str(run)]) == 0
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    assert "memorisation audit" in (tmp_path / "rep" / "report.md").read_text()


def test_audit_bad_inputs(tmp_path, capsys):
    assert main(["audit", str(tmp_path)]) == 2
    assert "is not a synthset run directory" in capsys.readouterr().err
    with pytest.raises(ValueError, match="held_out must be >= 10"):
        AuditConfig(held_out=3)
    from synthset.data.base import DatasetInfo
    from synthset.synthetic import SyntheticSet
    info = DatasetInfo(name="mhist", channels=3, size=(16, 16), class_names=("HP", "SSA"),
                       mean=(0.5,) * 3, std=(0.2,) * 3)
    SyntheticSet(images=torch.randn(2, 3, 16, 16), labels=torch.tensor([0, 1]), info=info,
                 metadata={"data": {"name": "mhist", "root": str(tmp_path / "nowhere")}}).save(tmp_path / "m")
    with pytest.raises(DataError, match="cannot audit .*its dataset 'mhist' is not available"):
        audit(tmp_path / "m")
