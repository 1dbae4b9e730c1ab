"""Evaluate one set in every format synthset reads, and show a hostile pickle refused.

    python benchmarks/foreign_sets.py --out benchmarks/results/foreign_sets

A herding IPC 10 MNIST set (pixel features) is written as a synthset run directory, exported
with ``synthset export --format dcbench`` and ``--format png``, saved by hand in the official
DC/DM loop's shape (``{'data': [[images, labels], ...], 'accs_all_exps': {...}}``, two
experiments) and as a uint8 ``.npz``; each is evaluated with the same seed (1 run x 50
epochs), so the accuracies must agree. Then a ``.pt`` whose unpickling would create a file is
evaluated: refused, and the file is not created."""
from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from header import header  # the script's own folder is on sys.path when run as a script

EVAL = ["--dataset", "mnist", "--runs", "1", "--epochs", "50", "--device", "cpu"]


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def sh(argv: list[str], log) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True)
    log.append({"command": shlex.join(argv), "returncode": proc.returncode,
                "stdout_tail": proc.stdout[-1500:], "stderr_tail": proc.stderr[-1500:]})
    print(f"$ {shlex.join(argv)}\n{proc.stdout[-600:]}{proc.stderr[-600:]}", flush=True)
    return proc


def accuracy(run_dir: Path) -> float:
    return json.loads((run_dir / "eval.json").read_text())["models"]["ConvNet"]["mean"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        w = Path(tmp)
        sh(["synthset", "distill", "--method", "herding", "--features", "pixels", "--ipc", "10",
            "--out", str(w / "herding")], log)
        sh(["synthset", "evaluate", str(w / "herding"), *EVAL[2:]], log)
        rows["synthset run directory"] = accuracy(w / "herding")
        sh(["synthset", "export", str(w / "herding"), "--format", "dcbench", "--out",
            str(w / "exported.pt")], log)
        sh(["synthset", "export", str(w / "herding"), "--format", "png", "--out", str(w / "png")], log)
        data = torch.load(w / "exported.pt", weights_only=True)["data"][0]
        torch.save({"data": [[data[0].clone(), data[1].clone()], [data[0].flip(0), data[1].flip(0)]],
                    "accs_all_exps": {"ConvNet": [0.95, 0.94]}}, w / "res_DM_MNIST_ConvNet_10ipc.pt")
        px = np.clip(np.round((data[0].numpy() * 0.3081 + 0.1307) * 255), 0, 255).astype(np.uint8)
        np.savez(w / "set.npz", images=px, labels=data[1].numpy())
        for label, name in (("synthset export --format dcbench (.pt)", "exported.pt"),
                            ("official loop's .pt with accs_all_exps (experiment 0)",
                             "res_DM_MNIST_ConvNet_10ipc.pt"),
                            ("ImageFolder of PNGs (synthset export --format png)", "png"),
                            (".npz, uint8 pixels", "set.npz")):
            proc = sh(["synthset", "evaluate", str(w / name), *EVAL], log)
            rows[label] = accuracy(w / (name + ".synthset")) if proc.returncode == 0 else None
        marker = w / "code-ran"
        torch.save({"data": [[data[0], data[1]]], "x": _Payload(str(marker))}, w / "evil.pt")
        proc = sh(["synthset", "evaluate", str(w / "evil.pt"), *EVAL], log)
        refused = {"returncode": proc.returncode, "message": proc.stderr.strip(),
                   "code_ran": marker.exists()}
    result = {**header(sys.argv), "protocol": "ConvNet, 1 run x 50 epochs, seed 0",
              "accuracy": rows, "pickle": refused, "log": log}
    (out / "foreign_sets_cpu.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({"accuracy": rows, "pickle": refused}, indent=2))


if __name__ == "__main__":
    main()
