"""Shared fixtures: the real data in ../shared/data (read-only) and tiny subsets of it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from synthset.config import DataConfig
from synthset.data import ImageData, load_dataset

# SYNTHSET_TEST_DATA: a copy of the data elsewhere (e.g. on a GPU machine)
SHARED = Path(os.environ.get("SYNTHSET_TEST_DATA")
              or Path(__file__).resolve().parents[1].parent / "shared" / "data")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never write to the user's cache; the data root is the shared folder."""
    monkeypatch.setenv("SYNTHSET_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("SYNTHSET_DATA", str(SHARED))
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_root() -> Path:
    if not (SHARED / "MNIST" / "raw").exists():
        pytest.skip(f"real data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def mnist_train(shared_root) -> ImageData:
    return load_dataset(DataConfig(name="mnist", root=str(shared_root)), "train")


@pytest.fixture(scope="session")
def mnist_test(shared_root) -> ImageData:
    return load_dataset(DataConfig(name="mnist", root=str(shared_root)), "test")


def subset(data: ImageData, per_class: int, seed: int = 0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat([ix[torch.randperm(len(ix), generator=g)[:per_class]]
                     for ix in data.indices_by_class()])
    return ImageData(images=data.images[idx], labels=data.labels[idx], info=data.info)


@pytest.fixture(scope="session")
def tiny_train(mnist_train) -> ImageData:
    """30 real MNIST training images per class (300 in all)."""
    return subset(mnist_train, 30)


@pytest.fixture(scope="session")
def tiny_test(mnist_test) -> ImageData:
    """50 real MNIST test images per class (500 in all)."""
    return subset(mnist_test, 50, seed=1)
