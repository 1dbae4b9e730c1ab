import json

import numpy as np
import pytest
import torch
from PIL import Image

from synthset.data import DataError, DatasetInfo
from synthset.synthetic import SyntheticSet

INFO = DatasetInfo(name="mnist", channels=1, size=(28, 28), class_names=tuple("0123456789"),
                   mean=(0.1307,), std=(0.3081,))


def _set(ipc=2):
    g = torch.Generator().manual_seed(0)
    return SyntheticSet(images=torch.randn(10 * ipc, 1, 28, 28, generator=g),
                        labels=torch.arange(10).repeat_interleave(ipc), info=INFO,
                        metadata={"method": "random", "ipc": ipc})


def test_save_load_round_trip_without_pickle(tmp_path):
    s = _set()
    s.save(tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "synthetic.json").read_text())
    assert meta["metadata"]["versions"]["torch"] == torch.__version__
    t = SyntheticSet.load(tmp_path / "run")
    assert torch.equal(t.images, s.images) and torch.equal(t.labels, s.labels)
    assert t.info == INFO and t.ipc == 2 and t.metadata["method"] == "random"


def test_shape_mismatch_and_missing_run_dir(tmp_path):
    with pytest.raises(ValueError, match="do not match the dataset"):
        SyntheticSet(images=torch.zeros(2, 3, 28, 28), labels=torch.zeros(2, dtype=torch.long), info=INFO)
    with pytest.raises(DataError, match="not a synthset run directory"):
        SyntheticSet.load(tmp_path)
    s = _set()
    s.save(tmp_path / "r")
    (tmp_path / "r" / "synthetic.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupt"):
        SyntheticSet.load(tmp_path / "r")
    # the recipe alone (what an attack remakes) reads from the JSON, tensors or not
    info, meta = SyntheticSet.read_recipe(tmp_path / "r")
    assert info == INFO and "versions" in meta
    with pytest.raises(DataError, match="not a synthset run directory"):
        SyntheticSet.read_recipe(tmp_path)
    (tmp_path / "r" / "synthetic.json").write_text("{")
    with pytest.raises(DataError, match="corrupt"):
        SyntheticSet.read_recipe(tmp_path / "r")


def test_exports_png_folder_dcbench_and_grid(tmp_path):
    s = _set(3)
    folder = s.export_png_folder(tmp_path / "png")
    files = sorted(folder.glob("*/*.png"))
    assert len(files) == 30 and (folder / "7" / "0002.png").exists()
    px = torch.from_numpy(np.array(Image.open(folder / "0" / "0000.png"))).float()
    assert torch.allclose(px / 255, s.pixels()[0, 0], atol=1 / 255)
    pt = s.export_dcbench(tmp_path / "set.pt")
    d = torch.load(pt, weights_only=True)
    assert torch.equal(d["data"][0][0], s.images) and torch.equal(d["data"][0][1], s.labels)
    grid = Image.open(s.grid(tmp_path / "grid.png", scale=1))
    assert grid.size == (3 * 30 + 2, 10 * 30 + 2)  # 3 columns, 10 rows of 28 px + 2 px gaps
