import numpy as np
import pytest
from PIL import Image

from synthset.config import DataConfig
from synthset.data import DataError, load_dataset


def _tree(root, classes=("cat", "dog"), n=5, size=12, mode="RGB"):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            shape = (size, size, 3) if mode == "RGB" else (size, size)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / c / f"{i}.png")


def test_folder_holdout_split_and_stats(tmp_path):
    _tree(tmp_path)
    cfg = DataConfig(name="folder", path=str(tmp_path))
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    assert train.info.class_names == ("cat", "dog")
    assert len(train) == 8 and len(test) == 2  # 20% of 5 per class held out
    assert train.images.shape[1:] == (3, 12, 12)
    assert train.info.mean == test.info.mean  # statistics from the training split only


def test_folder_train_test_subfolders_grayscale_resize(tmp_path):
    _tree(tmp_path / "train", mode="L")
    _tree(tmp_path / "test", n=2, mode="L")
    cfg = DataConfig(name="folder", path=str(tmp_path), image_size=8)
    test = load_dataset(cfg, "test")
    assert test.images.shape == (4, 1, 8, 8) and test.labels.tolist() == [0, 0, 1, 1]


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset(DataConfig(name="folder"), "train")
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(DataConfig(name="folder", path=str(tmp_path)), "train")
