"""Sets made by other tools: each format read back to the same normalised images, bad files
refused with messages that say why, and a pickle that would run code refused unrun."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synthset.cli import main
from synthset.data.base import DataError, DatasetInfo, normalize
from synthset.foreign import check_normalised, detect_format, load_foreign, resolve_run_dir
from synthset.synthetic import SyntheticSet

INFO = DatasetInfo(name="mnist", channels=1, size=(28, 28), class_names=tuple(map(str, range(10))),
                   mean=(0.1307,), std=(0.3081,))


def _pixels(ipc=2, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    px = torch.randint(0, 256, (10 * ipc, 1, 28, 28), generator=g, dtype=torch.uint8)
    return px, torch.arange(10).repeat_interleave(ipc)


def test_official_pt_layout_with_accs_all_exps(tmp_path):
    px, y = _pixels()
    x = normalize(px, INFO.mean, INFO.std)
    other = x.flip(0)
    # the official loop's save: one [images, labels] pair per experiment, plus its accuracies
    torch.save({"data": [[x, y], [other, y]], "accs_all_exps": {"ConvNet": [0.9, 0.91]}},
               tmp_path / "res_DM_MNIST_ConvNet_2ipc.pt")
    s = load_foreign(tmp_path / "res_DM_MNIST_ConvNet_2ipc.pt", INFO)
    assert torch.equal(s.images, x) and torch.equal(s.labels, y) and s.ipc == 2
    assert s.metadata["source"]["format"] == "pt" and s.metadata["source"]["pairs_in_file"] == 2
    s1 = load_foreign(tmp_path / "res_DM_MNIST_ConvNet_2ipc.pt", INFO, index=1)
    assert torch.equal(s1.images, other)
    with pytest.raises(DataError, match="holds 2 .*--set-index 5 is out of range"):
        load_foreign(tmp_path / "res_DM_MNIST_ConvNet_2ipc.pt", INFO, index=5)


def test_dcbench_folder_and_mtt_tensors(tmp_path):
    px, y = _pixels()
    x = normalize(px, INFO.mean, INFO.std)
    bench = tmp_path / "distilled_results" / "DM" / "MNIST" / "IPC2"
    bench.mkdir(parents=True)
    torch.save({"data": [[x, y]]}, bench / "res_DM_MNIST_ConvNet_2ipc.pt")
    assert detect_format(bench) == "dcbench"
    assert torch.equal(load_foreign(bench, INFO).images, x)
    mtt = tmp_path / "mtt"
    mtt.mkdir()
    torch.save(x, mtt / "images_best.pt")
    torch.save(y, mtt / "labels_best.pt")
    assert torch.equal(load_foreign(mtt, INFO).labels, y)


def test_export_round_trips_through_png_folder_dcbench_and_npz(tmp_path):
    px, y = _pixels()
    x = normalize(px, INFO.mean, INFO.std)
    s = SyntheticSet(images=x, labels=y, info=INFO)
    s.export_png_folder(tmp_path / "png")
    s.export_dcbench(tmp_path / "set.pt")
    np.savez(tmp_path / "u8.npz", images=px.numpy(), labels=y.numpy())
    np.savez(tmp_path / "nhwc.npz", x=px.permute(0, 2, 3, 1).numpy(), y=y.numpy())
    np.savez(tmp_path / "f32.npz", images=x.numpy(), labels=y.numpy())
    for path in ("png", "set.pt", "u8.npz", "nhwc.npz", "f32.npz"):
        got = load_foreign(tmp_path / path, INFO)
        order = torch.argsort(got.labels, stable=True)
        # 8-bit PNGs hold the pixels exactly, so every format gives the same normalised images
        assert torch.allclose(got.images[order], x, atol=1e-6), path
        assert torch.equal(got.labels[order], y), path


def test_unnormalised_or_wrong_size_sets_are_refused(tmp_path):
    px, y = _pixels()
    torch.save({"data": [[px.float() / 255, y]]}, tmp_path / "unit.pt")
    with pytest.raises(DataError, match=r"pixel values in \[0, 1\], saved unnormalised.*mean \(0.1307\)"):
        load_foreign(tmp_path / "unit.pt", INFO)
    torch.save({"data": [[px.float(), y]]}, tmp_path / "255.pt")
    with pytest.raises(DataError, match=r"pixel values in \[0, 255\]"):
        load_foreign(tmp_path / "255.pt", INFO)
    big = torch.nn.functional.interpolate(normalize(px, INFO.mean, INFO.std), size=32)
    torch.save({"data": [[big, y]]}, tmp_path / "32.pt")
    with pytest.raises(DataError, match="images are 1x32x32, but mnist is loaded at 1x28x28; pass --image-size 32"):
        load_foreign(tmp_path / "32.pt", INFO)
    with pytest.raises(DataError, match="not those of normalised images"):
        check_normalised(torch.randn(20, 1, 28, 28) * 40 - 5, INFO)
    torch.save({"data": [[normalize(px, INFO.mean, INFO.std), y + 5]]}, tmp_path / "labels.pt")
    with pytest.raises(DataError, match="labels must be in 0..9 for mnist, found 5..14"):
        load_foreign(tmp_path / "labels.pt", INFO)
    (tmp_path / "broken.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="not a readable torch file"):
        load_foreign(tmp_path / "broken.pt", INFO)


class _RunsCode:
    """Unpickling this calls Path.touch: a stand-in for any code a hostile file could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "code-ran"
    px, y = _pixels()
    torch.save({"data": [[normalize(px, INFO.mean, INFO.std), y]], "payload": _RunsCode(marker)},
               tmp_path / "evil.pt")
    with pytest.raises(DataError, match=r"holds a Python object \(.*\) besides tensors.*refuses to unpickle it .*nothing in the file was run"):
        load_foreign(tmp_path / "evil.pt", INFO)
    assert not marker.exists()
    # the same payload by plain pickle in an .npz object array
    np.savez(tmp_path / "evil.npz", images=np.array([_RunsCode(marker)], dtype=object), labels=y.numpy())
    with pytest.raises(DataError, match="object arrays, which synthset refuses to unpickle"):
        load_foreign(tmp_path / "evil.npz", INFO)
    assert not marker.exists()
    pickle.loads(pickle.dumps(_RunsCode(marker)))  # the payload is real: plain pickle runs it
    assert marker.exists()


def test_evaluate_report_and_compare_a_foreign_set(tmp_path, shared_root, capsys):
    from synthset.config import DataConfig
    from synthset.data import load_dataset
    train = load_dataset(DataConfig(name="mnist", root=str(shared_root)), "train")
    idx = torch.cat([ix[:2] for ix in train.indices_by_class()])
    x, y = train.normalized(idx), train.labels[idx]
    torch.save({"data": [[x, y]], "accs_all_exps": {"ConvNet": []}}, tmp_path / "official.pt")
    assert main(["evaluate", str(tmp_path / "official.pt"), "--epochs", "2", "--runs", "1",
                 "--device", "cpu"]) == 2
    assert "name its dataset with --dataset" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "official.pt"), "--dataset", "mnist", "--epochs", "2",
                 "--runs", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "official.pt.synthset"
    assert f"imported {tmp_path / 'official.pt'} (pt) into {run}" in out
    rep = json.loads((run / "eval.json").read_text())
    assert rep["models"]["ConvNet"]["epochs"] == 2 and len(rep["models"]["ConvNet"]["runs"]) == 1
    assert resolve_run_dir(tmp_path / "official.pt") == run
    assert main(["compare", str(tmp_path / "official.pt")]) == 0
    assert "imported:pt" in capsys.readouterr().out
    # a changed file at the same path is not mixed with the old one's evaluations
    torch.save({"data": [[x.flip(0), y.flip(0)]]}, tmp_path / "official.pt")
    assert main(["evaluate", str(tmp_path / "official.pt"), "--dataset", "mnist", "--epochs", "2",
                 "--runs", "1", "--device", "cpu"]) == 2
    assert "holds another set than" in capsys.readouterr().err
