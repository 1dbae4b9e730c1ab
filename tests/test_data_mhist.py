"""MHIST: the real annotations and pixels, and every malformed-input path."""
import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from synthset.config import DataConfig
from synthset.data import DataError, load_dataset
from synthset.data import mhist


def test_real_annotations_counts(shared_root):
    rows = mhist.parse_annotations(shared_root / "mhist" / "annotations.csv")
    assert len(rows) == 3152
    train = [r for r in rows if r.split == "train"]
    test = [r for r in rows if r.split == "test"]
    assert len(train) == 2175 and len(test) == 977
    assert sum(r.label for r in test) == 360  # SSA
    assert all((r.label == 1) == (r.ssa_votes >= 4) for r in rows)


def test_webp_pixels_match_official_png_hashes(shared_root):
    folder = shared_root / "mhist"
    expected = dict(line.split()[::-1] for line in (folder / "pixels.sha256").read_text().splitlines()[:5])
    for name, digest in expected.items():
        a = mhist.decode(mhist.find_image(folder / "images", name), 224)  # found by stem: .webp
        assert hashlib.sha256(a.transpose(1, 2, 0).tobytes()).hexdigest() == digest


def _fake_mhist(root, n=6, size=40):
    base = root / "mhist"
    (base / "images").mkdir(parents=True)
    lines = [",".join(mhist.COLUMNS)]
    rng = np.random.default_rng(0)
    for i in range(n):
        name = f"MHIST_{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(base / "images" / name)
        label = "SSA" if i % 3 == 0 else "HP"
        lines.append(f"{name},{label},{5 if label == 'SSA' else 1},{'test' if i % 2 else 'train'}")
    (base / "annotations.csv").write_text("\r\n".join(lines) + "\r\n")
    return base


def test_fake_folder_loads_with_resize_and_cache(tmp_path):
    _fake_mhist(tmp_path)
    rows, images = mhist.load_all(tmp_path, 32, check_md5=False)
    assert images.shape == (6, 3, 32, 32) and images.dtype == torch.uint8
    rows2, images2 = mhist.load_all(tmp_path, 32, check_md5=False)  # second time from cache
    assert torch.equal(images, images2)


def test_annotations_checksum_mismatch(tmp_path):
    _fake_mhist(tmp_path)
    with pytest.raises(DataError, match=r"annotations.csv: checksum mismatch.*official MHIST"):
        load_dataset(DataConfig(name="mhist", root=str(tmp_path), image_size=32), "train")


def test_missing_annotations_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="data-use form"):
        load_dataset(DataConfig(name="mhist", root=str(tmp_path)), "train")


def test_malformed_row_is_named(tmp_path):
    base = _fake_mhist(tmp_path)
    text = (base / "annotations.csv").read_text().replace("MHIST_002.png,HP,1,train", "MHIST_002.png,XX,1,train")
    (base / "annotations.csv").write_text(text)
    with pytest.raises(DataError, match=r"line 4: label 'XX' is not HP or SSA"):
        mhist.parse_annotations(base / "annotations.csv", check_md5=False)
    (base / "annotations.csv").write_text(text.replace("MHIST_002.png,XX,1,train", "MHIST_002.png,HP"))
    with pytest.raises(DataError, match=r"line 4: expected 4 columns"):
        mhist.parse_annotations(base / "annotations.csv", check_md5=False)


def test_missing_image_is_named(tmp_path):
    base = _fake_mhist(tmp_path)
    (base / "images" / "MHIST_004.png").unlink()
    with pytest.raises(DataError, match=r"MHIST image MHIST_004.png not found"):
        mhist.load_all(tmp_path, 32, check_md5=False)


def test_real_split_at_small_size_uses_real_annotations(shared_root, tmp_path):
    # Copy 0 images: just check the stem lookup finds the real webp files for a few rows.
    rows = mhist.parse_annotations(shared_root / "mhist" / "annotations.csv")
    for r in rows[:3]:
        assert mhist.find_image(shared_root / "mhist" / "images", r.name).suffix == ".webp"
