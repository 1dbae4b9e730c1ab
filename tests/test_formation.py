"""Multi-formation (IDC): decoding by hand, the real-image start, the saved set, the loop."""
import pytest
import torch
import torch.nn.functional as F

from helpers import distill_config, match_loop

from synthset.config import CoresetConfig, DistillConfig, EngineConfig
from synthset.engine.runner import make_context
from synthset.formation import decode, encode
from synthset.methods import METHODS
from synthset.methods.dm import DM
from synthset.synthetic import SyntheticSet

CPU = torch.device("cpu")


def test_decode_tiles_by_hand():
    # One stored 1x4x4 image holding four constant 2x2 tiles: 1 (top left), 2, 3, 4.
    stored = torch.tensor([[1.0, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]).view(1, 1, 4, 4)
    images, labels = decode(stored, torch.tensor([7]), 2)
    assert images.shape == (4, 1, 4, 4) and labels.tolist() == [7, 7, 7, 7]
    for k, v in enumerate([1.0, 2.0, 3.0, 4.0]):  # a constant tile upsamples to a constant image
        assert torch.allclose(images[k], torch.full((1, 4, 4), v))
    assert decode(stored, torch.tensor([7]), 1)[0] is stored


def test_encode_then_decode_gives_the_images_at_tile_resolution_in_order():
    x = torch.randn(2 * 4, 3, 8, 8)
    stored = encode(x, 2)
    assert stored.shape == (2, 3, 8, 8)
    back, _ = decode(stored, torch.zeros(2, dtype=torch.long), 2)
    want = F.interpolate(F.avg_pool2d(x, 2), size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(back, want, atol=1e-6)


def test_decode_is_differentiable_and_each_pixel_feeds_factor_squared_outputs():
    x = torch.randn(3, 1, 28, 28, requires_grad=True)
    decode(x, torch.zeros(3, dtype=torch.long), 2)[0].sum().backward()
    # Bilinear upsampling by exactly 2 spreads each input pixel over weights summing to 4.
    assert torch.allclose(x.grad, torch.full_like(x, 4.0))


def test_a_factor_that_does_not_divide_the_size_is_refused():
    with pytest.raises(ValueError, match="divide the image size 28x28"):
        decode(torch.zeros(1, 1, 28, 28), torch.zeros(1, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="factor must be >= 1"):
        EngineConfig(factor=0)


def test_saved_set_keeps_its_factor_and_exports_decoded_images(tiny_train, tmp_path):
    stored = torch.randn(20, 1, 28, 28)
    labels = torch.arange(10).repeat_interleave(2)
    sset = SyntheticSet(images=stored, labels=labels, info=tiny_train.info, factor=2)
    loaded = SyntheticSet.load(sset.save(tmp_path / "run"))
    assert loaded.factor == 2 and loaded.ipc == 2
    images, labs = loaded.decoded()
    assert images.shape == (80, 1, 28, 28) and torch.bincount(labs).tolist() == [8] * 10
    out = loaded.export_png_folder(tmp_path / "png")
    assert len(list(out.rglob("*.png"))) == 80
    with pytest.raises(ValueError, match="divide"):
        SyntheticSet(images=stored, labels=labels, info=tiny_train.info, factor=3)


def _cfg(**kw):
    match = dict(iterations=3, batch_real=8, checkpoint_every=0, factor=2)
    match.update(kw)
    return distill_config("dm", 1, 0, features="pixels", **match)


def test_herding_start_tiles_the_herding_coreset_of_factor_squared_images(tiny_train):
    cfg = _cfg(iterations=0, init="herding")
    out = match_loop(DM(), tiny_train, cfg, device=CPU, generator=torch.Generator().manual_seed(0),
                     log=lambda m: None, progress=False)
    four = DistillConfig(method="herding", ipc=4, coreset=CoresetConfig(features="pixels"))
    coreset = METHODS.get("herding").run(tiny_train, four, None, device=CPU,
                                         generator=torch.Generator(), log=lambda m: None)
    assert out.images.shape == (10, 1, 28, 28) and out.factor == 2
    assert torch.equal(out.images, encode(coreset.images, 2))


def test_the_loop_matches_decoded_images_and_resumes_exactly(tiny_train, tmp_path):
    run = dict(device=CPU, log=lambda m: None, progress=False)
    full = match_loop(DM(), tiny_train, _cfg(), generator=torch.Generator().manual_seed(0), **run)
    start = match_loop(DM(), tiny_train, _cfg(iterations=0), generator=torch.Generator().manual_seed(0), **run)
    assert full.images.shape == (10, 1, 28, 28) and not torch.equal(full.images, start.images)
    match_loop(DM(), tiny_train, _cfg(iterations=2), run_dir=tmp_path,
               generator=torch.Generator().manual_seed(0), **run)
    resumed = match_loop(DM(), tiny_train, _cfg(), run_dir=tmp_path, resume=True,
                         generator=torch.Generator().manual_seed(0), **run)
    assert torch.equal(full.images, resumed.images)


def test_iteration_flops_count_the_decoded_images(tiny_train):
    def flops(cfg):
        return DM().iteration_flops(make_context(DM(), tiny_train, cfg, DM().options({}), CPU))
    f2 = flops(_cfg())
    ipc4 = flops(distill_config("dm", 4, batch_real=8))
    ipc1 = flops(distill_config("dm", 1, batch_real=8))
    assert f2 == ipc4 > ipc1  # upsampling is element-wise work, counted as zero everywhere
