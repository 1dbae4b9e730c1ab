"""Time the README's main command from a fresh clone (install excluded) and keep its run
directory (set tensors excluded) for the results pages and the recipe's measured figures.

    python benchmarks/quickstart.py --out benchmarks/results/quickstart

Clones HEAD into a temporary folder, installs it into a new virtual environment (not timed),
then times ``synthset distill --recipe mnist-dm-fast ...`` and ``synthset evaluate ...`` with
an empty torch.compile cache, one after the other, nothing else running. MNIST is read from
$SYNTHSET_DATA (no download is timed)."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from header import header  # the script's own folder is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ["synthset distill --recipe mnist-dm-fast --out runs/dm10",
            "synthset evaluate runs/dm10 --runs 1 --epochs 300 --compile"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "synthset"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", str(clone / ".venv")], check=True)
        pip = [str(clone / ".venv/bin/python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "-e", str(clone)], check=True)
        install_seconds = time.perf_counter() - t0
        env = {**os.environ, "PATH": f"{clone / '.venv/bin'}:{os.environ['PATH']}",
               "TORCHINDUCTOR_CACHE_DIR": str(Path(tmp) / "inductor")}
        steps = []
        for command in COMMANDS:
            t = time.perf_counter()
            proc = subprocess.run(command, shell=True, cwd=clone, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            steps.append({"command": command, "seconds": time.perf_counter() - t,
                          "returncode": proc.returncode,
                          "output_tail": proc.stdout[-3000:]})
            print(proc.stdout[-3000:], flush=True)
            if proc.returncode:
                break
        printed = re.findall(r"ConvNet\s*\|?\s*([\d.]+)", steps[-1]["output_tail"])
        result = {**header(sys.argv), "install_seconds_not_timed": install_seconds,
                  "steps": steps, "total_seconds": sum(s["seconds"] for s in steps),
                  "printed_accuracy": printed[-1] if printed else None}
        run = clone / "runs/dm10"
        if run.exists():
            dest = out / "dm10"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(run, dest, ignore=shutil.ignore_patterns("*.safetensors", "*.lock"))
        (out / "quickstart_cpu.json").write_text(json.dumps(result, indent=2))
    print(f"total {result['total_seconds']:.0f} s; wrote {out / 'quickstart_cpu.json'}")


if __name__ == "__main__":
    main()
