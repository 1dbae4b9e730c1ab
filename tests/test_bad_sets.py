"""Bad sets and layouts a new user meets, each refused or flagged with a message that names
the problem: an empty set, a set missing classes, folder trees laid out wrong, and --resume
with nothing to continue."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from synthset.config import DataConfig, EvalConfig, TrainConfig
from synthset.data import DataError, load_dataset
from synthset.data.base import DatasetInfo
from synthset.engine.rundir import RunDirError, owned
from synthset.evaluate import evaluate, missing_classes
from synthset.foreign import load_foreign
from synthset.report.runs import load_run
from synthset.report.tables import accuracy_table
from synthset.synthetic import SyntheticSet

INFO = DatasetInfo(name="mnist", channels=1, size=(28, 28), class_names=tuple(map(str, range(10))),
                   mean=(0.1307,), std=(0.3081,))


def test_an_official_pt_with_an_empty_experiment_is_refused_by_name(tmp_path):
    torch.save({"data": [[torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long)]]},
               tmp_path / "res.pt")
    with pytest.raises(DataError, match="holds no images"):
        load_foreign(tmp_path / "res.pt", INFO)
    with pytest.raises(ValueError, match="holds no images"):
        SyntheticSet(images=torch.zeros(0, 1, 28, 28), labels=torch.zeros(0, dtype=torch.long), info=INFO)


def test_a_set_missing_classes_is_evaluated_with_a_warning_recorded_and_reported(tmp_path, tiny_train, tiny_test):
    keep = torch.cat([torch.nonzero(tiny_train.labels == c)[:10, 0] for c in range(3)])  # classes 0-2
    x, y = tiny_train.normalized()[keep], tiny_train.labels[keep]
    assert missing_classes(y, tiny_test.info) == [str(c) for c in range(3, 10)]
    said = []
    cfg = EvalConfig(models=("ConvNet",), runs=1, train=TrainConfig(epochs=1))
    rep = evaluate(x, y, tiny_test, cfg, device=torch.device("cpu"), out_dir=tmp_path,
                   progress=False, log=said.append)
    assert any("no image of 7 of 10 classes (3, 4, 5, 6, 7, 8, 9)" in m and "at most 30%" in m
               for m in said), said
    assert json.loads((tmp_path / "eval.json").read_text())["missing_classes"] == rep["missing_classes"]
    SyntheticSet(images=x, labels=y, info=tiny_test.info, metadata={"method": "random"}).save(tmp_path)
    rec = load_run(tmp_path)
    assert rec.missing_classes == [str(c) for c in range(3, 10)]
    assert "has no image of class(es) 3, 4, 5, 6, 7, 8, 9" in accuracy_table([rec], "mnist").note
    with pytest.raises(ValueError, match="no images"):
        evaluate(x[:0], y[:0], tiny_test, cfg, device=torch.device("cpu"), progress=False)


def _images(folder, n=3):
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"{i}.png")


@pytest.mark.parametrize("layout, message", [
    (("train/cat", "train/dog"), "has train/ but no test/"),
    (("test/cat", "test/dog"), "has test/ but no train/"),
    (("cat",), "found one class folder \\(cat\\)"),
    (("cat/a", "dog/b"), "holds folders \\(a/...\\), not images"),
])
def test_folder_layout_mistakes_are_named(tmp_path, layout, message):
    for d in layout:
        _images(tmp_path / d)
    with pytest.raises(DataError, match=message):
        load_dataset(DataConfig(name="folder", path=str(tmp_path)), "train")


def test_resume_with_nothing_to_resume_says_so_and_resume_or_start_starts(tmp_path):
    with pytest.raises(RunDirError, match="does not exist, so there is nothing to continue"):
        with owned(tmp_path / "new", resume=True):
            pass
    assert not (tmp_path / "new").exists()  # the refusal leaves nothing behind
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="holds no checkpoint.safetensors.*--resume-or-start"):
        with owned(tmp_path / "empty", resume=True):
            pass
    with owned(tmp_path / "new", resume=True, start_if_missing=True) as d:
        assert d.is_dir()
