"""MedMNIST from fake .npz files in its exact layout (keys, shapes, (N, 1) labels) and
Fashion-MNIST from fake IDX files: loading, MedMNIST's own validation split, measured
normalisation, sizes, checksums, corrupt files and pickles; and the resumable, verified
download every dataset uses."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch

from synthset.config import DataConfig, TrainConfig
from synthset.data import DATASETS, DataError, load_dataset, load_training
from synthset.data.download import download_url

MEDMNIST = ("pathmnist", "bloodmnist", "dermamnist", "octmnist", "organamnist")


def _cfg(name, root, **kw):
    return DataConfig(**{"name": name, "root": str(root), "download": False, "verify": False, **kw})


@pytest.mark.parametrize("name", MEDMNIST)
def test_train_is_train_plus_val_and_holdout_removes_exactly_medmnists_val(tmp_path, name):
    spec = DATASETS.get(name)
    cfg = spec.fake(tmp_path)
    with np.load(tmp_path / "medmnist" / f"{name}.npz") as z:
        n_train, n_val, n_test = (len(z[f"{p}_labels"]) for p in ("train", "val", "test"))
        val_images = z["val_images"]
    whole, val, test = (load_dataset(cfg, s) for s in ("train", "val", "test"))
    rest, record = load_training(dataclasses.replace(cfg, holdout_val=True))
    assert (len(whole), len(val), len(rest), len(test)) == (n_train + n_val, n_val, n_train, n_test)
    got = val.images if val.images.shape[1] == 1 else val.images.permute(0, 2, 3, 1)
    assert torch.equal(got.reshape(val_images.shape), torch.from_numpy(val_images))
    assert record["rule"] == "MedMNIST's own validation split" and record["size"] == n_val
    assert whole.info.channels == spec.channels and whole.info.num_classes == len(spec.classes)
    # mean/std measured on the training images, used for every split
    x = whole.images.float() / 255
    dims = (0, 2, 3)
    assert np.allclose(whole.info.mean, x.mean(dims).tolist(), atol=1e-6)
    assert np.allclose(whole.info.std, x.std(dims, unbiased=False).tolist(), atol=1e-6)
    assert test.info.mean == whole.info.mean


def test_larger_sizes_checksums_and_bad_files(tmp_path):
    spec = DATASETS.get("pathmnist")
    spec.fake(tmp_path)
    src = tmp_path / "medmnist" / "pathmnist.npz"
    with pytest.raises(DataError, match="pathmnist_64.npz not found and download is off"):
        load_dataset(_cfg("pathmnist", tmp_path, image_size=64), "train")
    with pytest.raises(ValueError, match="published at 28, 64, 128, 224 px"):
        load_dataset(_cfg("pathmnist", tmp_path, image_size=32), "train")
    with pytest.raises(DataError, match="checksum mismatch .* expected a8b06965200029087d5bd730944a56c1"):
        load_dataset(_cfg("pathmnist", tmp_path, verify=True), "train")
    src.write_bytes(src.read_bytes()[:500])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_dataset(_cfg("pathmnist", tmp_path), "train")
    np.savez(src, train_images=np.zeros((2, 28, 28, 3), np.uint8))
    with pytest.raises(DataError, match="no train_labels.*not a MedMNIST file"):
        load_dataset(_cfg("pathmnist", tmp_path), "train")
    arrays = {k: np.array([{"a": 1}], dtype=object) for k in
              ("train_images", "train_labels", "val_images", "val_labels", "test_images", "test_labels")}
    np.savez(src, **arrays)
    with pytest.raises(DataError, match="pickled objects, which synthset never loads"):
        load_dataset(_cfg("pathmnist", tmp_path), "train")


def test_fashion_mnist_loads_and_checks_the_md5_of_the_gz_files(tmp_path):
    cfg = DATASETS.get("fashion-mnist").fake(tmp_path)
    train = load_dataset(cfg, "train")
    assert train.images.shape == (40, 1, 28, 28) and train.info.class_names[0] == "T-shirt/top"
    assert train.info.mean == (0.2861,)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: checksum mismatch \\(md5 "
                                        "[0-9a-f]+, expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d"):
        load_dataset(dataclasses.replace(cfg, verify=True), "train")
    assert "flip" in DATASETS.get("fashion-mnist").train_config(TrainConfig()).dsa.strategy


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one payload, honouring Range requests; counts the bytes it sent."""
    payload = b""
    sent: list = []

    def do_GET(self):
        start = 0
        if self.headers.get("Range", "").startswith("bytes="):
            start = int(self.headers["Range"][6:].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.sent.append(len(body))

    def log_message(self, *args):
        pass


@pytest.fixture
def range_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()


def test_download_resumes_a_partial_file_and_verifies_it(tmp_path, range_server):
    payload = bytes(range(256)) * 400
    _RangeHandler.payload, _RangeHandler.sent = payload, []
    url = f"http://127.0.0.1:{range_server.server_address[1]}/x.npz"
    dest = tmp_path / "x.npz"
    (tmp_path / "x.npz.part").write_bytes(payload[:60000])  # an earlier attempt stopped here
    download_url(url, dest, md5=hashlib.md5(payload).hexdigest(), progress=False)
    assert dest.read_bytes() == payload and _RangeHandler.sent == [len(payload) - 60000]
    assert not (tmp_path / "x.npz.part").exists()
    # a wrong checksum: refused, and the bad download is not kept
    with pytest.raises(DataError, match="checksum mismatch"):
        download_url(url, tmp_path / "y.npz", md5="0" * 32, progress=False)
    assert not (tmp_path / "y.npz").exists() and not (tmp_path / "y.npz.part").exists()


def test_no_network_says_how_to_fetch_the_file_by_hand(tmp_path, monkeypatch):
    import urllib.request

    def offline(*a, **k):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="could not download .*cifar-10-binary.tar.gz.*Without a "
                                        "network, fetch it on another machine"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path)), "train")
    with pytest.raises(DataError, match="could not download .*dermamnist.npz.*--no-download"):
        load_dataset(DataConfig(name="dermamnist", root=str(tmp_path)), "train")
    with pytest.raises(DataError, match="could not download Fashion-MNIST .*--no-download"):
        load_dataset(DataConfig(name="fashion-mnist", root=str(tmp_path)), "train")
