"""DSA: siamese parameter sharing, gradients to the input, and each op's closed form."""
import pytest
import torch

from synthset import augment
from synthset.config import DSAConfig


def _sample(op, groups, m, size=(8, 8), seed=0, **kw):
    cfg = DSAConfig(strategy=op, **kw)
    return cfg, augment.sample(cfg, groups, m, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("op", augment.OPS)
def test_gradient_reaches_input(op):
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    cfg, p = _sample(op, 1, 4)
    augment.apply(x, p, 1, cfg).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_siamese_pairs_get_identical_transforms():
    real = torch.randn(2 * 6, 3, 16, 16)
    syn = real.view(2, 6, 3, 16, 16)[:, :2].reshape(4, 3, 16, 16).clone()
    dsa = augment.DSA(DSAConfig())
    g = torch.Generator().manual_seed(0)
    for _ in range(12):  # several ops get drawn
        ar, asyn = dsa.pair(real, syn, 2, g)
        assert torch.allclose(ar.view(2, 6, 3, 16, 16)[:, :2].reshape(4, 3, 16, 16), asyn, atol=1e-6)


def test_same_seed_same_result_and_params_are_per_image():
    x = torch.randn(6, 1, 8, 8)
    dsa = augment.DSA(DSAConfig(strategy="rotate"))
    a = dsa(x, torch.Generator().manual_seed(5))
    b = dsa(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    _, p = _sample("rotate", 1, 6)
    assert p.values["theta"].unique().numel() == 6


def test_flip_is_exact_mirror():
    x = torch.randn(50, 1, 5, 5)
    cfg, p = _sample("flip", 1, 50)
    y = augment.apply(x, p, 1, cfg)
    f = p.values["flip"].view(-1)
    assert f.any() and (~f).any()
    assert torch.equal(y[f], x[f].flip(3)) and torch.equal(y[~f], x[~f])


def test_crop_is_integer_shift_with_zero_fill():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = augment.translate(x, torch.tensor([1]), torch.tensor([-1]))
    expected = torch.tensor([[0, 4, 5, 6], [0, 8, 9, 10], [0, 12, 13, 14], [0, 0, 0, 0]], dtype=torch.float)
    assert torch.equal(y[0, 0], expected)


def test_cutout_zeroes_a_square_of_half_side():
    m = augment.cutout_mask(torch.tensor([4]), torch.tensor([4]), 8, 8, 0.5)
    assert m.sum() == 64 - 16 and m[0, 2:6, 2:6].sum() == 0


def test_color_brightness_shift():
    x = torch.zeros(3, 3, 4, 4)
    cfg, p = _sample("color", 1, 3)
    y = augment.apply(x, p, 1, cfg)
    # On a constant image saturation and contrast are no-ops; only brightness remains.
    assert torch.allclose(y.mean(dim=(1, 2, 3)), p.values["brightness"].view(-1), atol=1e-6)


def test_scale_and_rotate_identity_at_zero_strength():
    x = torch.randn(2, 1, 8, 8)
    for op, kw in (("scale", {"scale": 1.0}), ("rotate", {"rotate_deg": 0.0})):
        cfg, p = _sample(op, 1, 2, **kw)
        assert torch.allclose(augment.apply(x, p, 1, cfg), x, atol=1e-5)


def test_unknown_op_rejected():
    with pytest.raises(ValueError, match="unknown DSA op"):
        DSAConfig(strategy="color_blur")


def test_dihedral_draws_each_image_from_its_eight_symmetries():
    x = torch.arange(40 * 2 * 3 * 3, dtype=torch.float32).view(40, 2, 3, 3)
    out = augment.dihedral(x, torch.Generator().manual_seed(0))
    seen = set()
    for i in range(len(x)):
        images = [torch.rot90(x[i].flip(2) if m else x[i], k, (1, 2)) for m in (0, 1) for k in range(4)]
        hits = [j for j, im in enumerate(images) if torch.equal(out[i], im)]
        assert len(hits) == 1  # exactly one of the 8 (all distinct for this image)
        seen.add(hits[0])
    assert seen == set(range(8))  # 40 draws reach every symmetry
    again = augment.dihedral(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    with pytest.raises(ValueError, match="square"):
        augment.dihedral(torch.zeros(2, 1, 3, 4), torch.Generator())


def test_dihedral_views_are_the_eight_symmetries_identity_first():
    x = torch.arange(2 * 2 * 3 * 3, dtype=torch.float32).view(2, 2, 3, 3)
    views = augment.dihedral_views(x)
    assert torch.equal(views[0], x)
    want = [torch.rot90(x.flip(3) if m else x, k, (2, 3)) for m in (0, 1) for k in range(4)]
    assert len(views) == 8 and all(torch.equal(v, w) for v, w in zip(views, want))
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8  # all distinct for this image
    with pytest.raises(ValueError, match="square"):
        augment.dihedral_views(torch.zeros(2, 1, 3, 4))
