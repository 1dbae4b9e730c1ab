"""CIFAR-10/100 from fake archives in the exact binary layout: records, labels (CIFAR-100's
coarse and fine), normalisation, a truncated or corrupt archive, a wrong checksum, the
extracted folder, and the pickle version refused without being unpickled."""
from __future__ import annotations

import dataclasses
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from synthset.config import DataConfig, TrainConfig
from synthset.data import DATASETS, DataError, load_dataset
from synthset.data.cifar import CIFAR10, CIFAR100, PIXELS, write_fake_archive
from synthset.evaluate import evaluate_run


CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)


@pytest.fixture
def root(tmp_path):
    DATASETS.get("cifar10").fake(tmp_path)
    DATASETS.get("cifar100").fake(tmp_path)
    return tmp_path


def _cfg(name, root, **kw):
    return DataConfig(name=name, root=str(root), download=False, verify=False, **kw)


def test_records_become_channels_first_images_with_their_labels(root):
    train = load_dataset(_cfg("cifar10", root), "train")
    test = load_dataset(_cfg("cifar10", root), "test")
    assert train.images.shape == (200, 3, 32, 32) and test.images.shape == (20, 3, 32, 32)
    assert train.class_counts() == [20] * 10
    # the first record of data_batch_1, read by hand: label byte, then R, G, B planes
    with tarfile.open(root / "cifar10" / CIFAR10.archive) as tar:
        raw = tar.extractfile("cifar-10-batches-bin/data_batch_1.bin").read()
    rec = np.frombuffer(raw[:1 + PIXELS], dtype=np.uint8)
    assert train.labels[0] == rec[0]
    assert torch.equal(train.images[0, 1], torch.from_numpy(rec[1 + 1024:1 + 2048].reshape(32, 32).copy()))
    x = train.normalized(torch.arange(4))
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    assert torch.allclose(x * torch.tensor((0.2023, 0.1994, 0.2010)).view(1, 3, 1, 1) + mean,
                          train.images[:4].float() / 255, atol=1e-6)


def test_cifar100_reads_fine_or_coarse_labels_and_the_validation_split(root):
    fine = load_dataset(_cfg("cifar100", root), "train")
    coarse = load_dataset(_cfg("cifar100-coarse", root), "train")
    assert fine.info.num_classes == 100 and coarse.info.num_classes == 20
    assert torch.equal(coarse.labels, fine.labels % 20)  # the fake's coarse byte
    assert fine.info.class_names[:2] == ("apple", "aquarium_fish")
    cfg = _cfg("cifar10", root, holdout_val=False)
    with pytest.raises(ValueError, match="--holdout-val"):  # 500 per class from 20: too few
        from synthset.data import load_training
        load_training(dataclasses.replace(cfg, holdout_val=True))


def test_resize_and_the_extracted_folder(root):
    small = load_dataset(_cfg("cifar10", root, image_size=16), "test")
    assert small.images.shape[-2:] == (16, 16) and small.info.size == (16, 16)
    with tarfile.open(root / "cifar10" / CIFAR10.archive) as tar:
        tar.extractall(root / "cifar10", filter="data")
    (root / "cifar10" / CIFAR10.archive).unlink()
    assert len(load_dataset(_cfg("cifar10", root), "train")) == 200


def test_wrong_checksum_truncated_archive_and_missing_data_are_named(root):
    with pytest.raises(DataError, match="checksum mismatch .* expected c32a1d4ab5d03f1284b67883e8d87530"):
        load_dataset(dataclasses.replace(_cfg("cifar10", root), verify=True), "train")
    path = root / "cifar10" / CIFAR10.archive
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_dataset(_cfg("cifar10", root), "train")
    with pytest.raises(DataError, match="download is off"):
        load_dataset(_cfg("cifar10", root / "empty"), "train")


def test_a_record_cut_short_is_named(tmp_path):
    write_fake_archive(tmp_path / "cifar10" / CIFAR10.archive, CIFAR10)
    with tarfile.open(tmp_path / "cifar10" / CIFAR10.archive) as tar:
        tar.extractall(tmp_path / "cifar10", filter="data")
    (tmp_path / "cifar10" / CIFAR10.archive).unlink()
    batch = tmp_path / "cifar10" / CIFAR10.inner / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-5])
    with pytest.raises(DataError, match="data_batch_3.bin: .* not a whole number of CIFAR-10 records"):
        load_dataset(_cfg("cifar10", tmp_path), "train")


class _Trap:
    """Unpickling this creates a file: the test checks that it never exists."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("name,archive", [("cifar10", "cifar-10-python.tar.gz"),
                                          ("cifar100", "cifar-100-python.tar.gz")])
def test_the_pickle_version_is_refused_and_never_unpickled(tmp_path, name, archive):
    trap = tmp_path / "unpickled"
    blob = pickle.dumps({"data": _Trap(trap)})
    folder = tmp_path / name
    folder.mkdir()
    with tarfile.open(folder / archive, "w:gz") as tar:
        ti = tarfile.TarInfo(archive.replace(".tar.gz", "") + "/data_batch_1")
        ti.size = len(blob)
        tar.addfile(ti, io.BytesIO(blob))
    with pytest.raises(DataError, match="Python version .* pickles, which synthset never loads"):
        load_dataset(_cfg(name, tmp_path), "train")
    # the same pickle archive under the binary name: not the binary layout, still not loaded
    (folder / archive).rename(folder / (CIFAR10 if name == "cifar10" else CIFAR100).archive)
    with pytest.raises(DataError, match="not the binary"):
        load_dataset(_cfg(name, tmp_path), "train")
    assert not trap.exists()


def test_one_run_trains_and_scores_on_the_fake_data(root):
    train, test = (load_dataset(_cfg("cifar10", root), s) for s in ("train", "test"))
    res = evaluate_run("ConvNetD2", train.normalized()[:40], train.labels[:40], test,
                       TrainConfig(epochs=2, precision="fp32"), seed=0, run=0,
                       device=torch.device("cpu"), progress=False)
    assert 0 <= res.accuracy <= 100 and res.steps > 0
