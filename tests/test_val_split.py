"""The validation split: fixed, stratified, disjoint from what a --holdout-val run reads,
recorded by seed and hash; evaluations on it keep their own files."""
from __future__ import annotations

import json

import pytest
import torch

from synthset.config import DataConfig
from synthset.data import DATASETS, load_dataset, load_training
from synthset.data.split import indices_hash, val_indices


def test_val_indices_are_fixed_stratified_and_sized():
    labels = torch.arange(3).repeat_interleave(20)[torch.randperm(60, generator=torch.Generator().manual_seed(5))]
    a = val_indices(labels, 3, per_class=4, seed=0)
    assert torch.equal(a, val_indices(labels, 3, per_class=4, seed=0))
    assert torch.bincount(labels[a], minlength=3).tolist() == [4, 4, 4]
    assert not torch.equal(a, val_indices(labels, 3, per_class=4, seed=1))
    f = val_indices(labels, 3, fraction=0.1, seed=0)
    assert torch.bincount(labels[f], minlength=3).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="only 20 training images"):
        val_indices(labels, 3, per_class=20)
    with pytest.raises(ValueError, match="exactly one"):
        val_indices(labels, 3)


def test_mnist_val_split_is_500_per_class_and_disjoint_from_holdout_training(shared_root):
    data = DataConfig(name="mnist", root=str(shared_root), holdout_val=True)
    whole = load_dataset(DataConfig(name="mnist", root=str(shared_root)), "train")
    index = DATASETS.get("mnist").val_indices(whole, 0)
    val, rest = load_dataset(data, "val"), load_dataset(data, "train")
    assert len(val) == 5000 and val.class_counts() == [500] * 10
    assert len(rest) == 55000 and len(whole) == 60000
    # disjoint: no image of the held-out training split is a validation image (by position)
    keep = torch.ones(len(whole), dtype=torch.bool)
    keep[index] = False
    assert torch.equal(rest.images, whole.images[keep]) and torch.equal(val.images, whole.images[index])
    # the record names the seed and hash of the indices, the same on every call
    train, record = load_training(data)
    assert len(train) == 55000 and record == {"held_out": True, "seed": 0, "size": 5000,
                                              "rule": "500 images per class",
                                              "sha256_16": indices_hash(index)}
    # known value: a change of the rule or the generator would show here
    assert record["sha256_16"] == indices_hash(DATASETS.get("mnist").val_indices(whole, 0))
    assert load_training(DataConfig(name="mnist", root=str(shared_root)))[1]["held_out"] is False


def test_split_names_are_checked(shared_root):
    with pytest.raises(ValueError, match="split must be one of train, val, test"):
        load_dataset(DataConfig(name="mnist", root=str(shared_root)), "valid")


def test_evaluate_on_val_keeps_its_own_files(tiny_train, tiny_test, tmp_path):
    from synthset.config import EvalConfig, TrainConfig
    from synthset.evaluate import evaluate, results_files
    images = tiny_train.normalized(torch.arange(0, 300, 30))
    labels = tiny_train.labels[torch.arange(0, 300, 30)]
    for split in ("val", "test"):
        cfg = EvalConfig(runs=1, split=split, train=TrainConfig(epochs=1, precision="fp32"))
        rep = evaluate(images, labels, tiny_test, cfg, device=torch.device("cpu"),
                       out_dir=tmp_path, progress=False, log=lambda m: None)
        assert rep["split"] == split
    assert results_files("val") == ("eval-val.json", "eval_runs-val.jsonl")
    for name in ("eval.json", "eval_runs.jsonl", "eval-val.json", "eval_runs-val.jsonl"):
        assert (tmp_path / name).exists()
    assert json.loads((tmp_path / "eval-val.json").read_text())["split"] == "val"
    assert len((tmp_path / "eval_runs-val.jsonl").read_text().splitlines()) == 1
