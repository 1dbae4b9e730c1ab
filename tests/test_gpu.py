"""The CUDA path (run with `pytest -m gpu` on a machine with a GPU; skipped elsewhere)."""
import pytest
import torch

from helpers import distill_config, match_loop

from synthset.config import TrainConfig
from synthset.evaluate import evaluate_run
from synthset.methods.dm import DM

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = torch.device("cuda")


def test_protocol_run_on_cuda_matches_cpu_closely(tiny_train, tiny_test):
    x, y = tiny_train.normalized()[:50], tiny_train.labels[:50]
    cfg = TrainConfig(epochs=3, augment=False)
    cpu = evaluate_run("ConvNet", x, y, tiny_test, cfg, seed=0, run=0, device=torch.device("cpu"), progress=False)
    gpu = evaluate_run("ConvNet", x, y, tiny_test, cfg, seed=0, run=0, device=CUDA, progress=False)
    assert abs(cpu.accuracy - gpu.accuracy) < 3.0


def test_dm_iterations_and_resume_on_cuda(tiny_train, tmp_path):
    cfg = distill_config("dm", 1, iterations=3, batch_real=16)
    out = match_loop(DM(), tiny_train, cfg, device=CUDA, run_dir=tmp_path, log=lambda m: None,
                     generator=torch.Generator().manual_seed(0), progress=False)
    assert out.images.device.type == "cpu" and torch.isfinite(out.images).all()


def test_auto_precision_on_cuda_is_bf16_autocast_and_runs(tiny_train, tiny_test):
    from synthset import autotune
    got = autotune.choose("train", "x", CUDA, "auto", lambda p: (lambda: None))
    assert got["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    cfg = distill_config("dm", 1, iterations=2, batch_real=16, precision="auto", compile=True)
    out = match_loop(DM(), tiny_train, cfg, device=CUDA, log=lambda m: None,
                     generator=torch.Generator().manual_seed(0), progress=False)
    assert out.metadata["precision"]["real"]["precision"] == got["precision"]
    assert torch.isfinite(out.images).all()
    x, y = tiny_train.normalized()[:50], tiny_train.labels[:50]
    run = evaluate_run("ConvNet", x, y, tiny_test, TrainConfig(epochs=2, precision=got["precision"]),
                       seed=0, run=0, device=CUDA, progress=False)
    assert 0 <= run.accuracy <= 100


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL needs one GPU per rank: 2 GPUs")
def test_two_nccl_ranks_make_the_one_gpu_set(tmp_path, shared_root):
    import subprocess
    import sys

    from synthset.synthetic import SyntheticSet
    args = ["distill", "--method", "dm", "--ipc", "2", "--iterations", "4", "--batch-real", "64",
            "--precision", "fp32", "--data-root", str(shared_root), "--device", "cuda"]
    for ranks, out in ((1, tmp_path / "one"), (2, tmp_path / "two")):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc-per-node={ranks}", "-m", "synthset"]
        res = subprocess.run([*launcher, *args, "--out", str(out)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-3000:]
    two = SyntheticSet.load(tmp_path / "two")
    assert two.metadata["world_size"] == 2
    assert float((SyntheticSet.load(tmp_path / "one").images - two.images).abs().max()) < 1e-3
