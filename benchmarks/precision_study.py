"""What --precision auto buys on this CPU, and what it costs in accuracy; writes JSON.

    python benchmarks/precision_study.py speed --out benchmarks/results/precision/speed_cpu.json
    python benchmarks/precision_study.py eval --out benchmarks/results/precision/eval_cpu.json
    python benchmarks/precision_study.py distill --out benchmarks/results/precision/distill_cpu.json

speed: per-iteration seconds of DM at the official settings (real batch 256 per class, a fresh
ConvNet per iteration, DSA) at IPC 1, 10 and 50, and of DataDAM at its own (real batch 64),
in one process, one variant after another: a reference-style per-class loop (eager fp32, the
public code's structure: a Python loop over classes, one real and one synthetic forward per
class; our code, written to time that structure), synthset ``--compile`` in fp32 (the fast
path before auto), and synthset ``--compile --precision auto``. Beside them: the matrix-multiply
peak of each precision (2048 x 2048) and the GFLOP/s each path achieves (counted FLOPs).

eval: the accuracy guard of the evaluation: one IPC 10 set (random real, seed 0), 5 runs x
1000 epochs (ConvNet, DSA) in fp32 and in bf16 (auto's choice here), same seeds.

distill: the accuracy guard of distillation: the mnist-dm-fast recipe made in fp32 and with
auto (same seed), each evaluated in fp32 with 5 runs x 300 epochs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from header import header  # the script's own folder is on sys.path when run as a script

from synthset import augment  # noqa: E402
from synthset.config import DataConfig, DSAConfig, EvalConfig, TrainConfig  # noqa: E402
from synthset.data import DATASETS, load_dataset  # noqa: E402
from synthset.data.base import normalize  # noqa: E402
from synthset.device import reuse_freed_memory  # noqa: E402
from synthset.distill import distill, run_method  # noqa: E402
from synthset.evaluate import evaluate  # noqa: E402
from synthset.methods import METHODS  # noqa: E402
from synthset.models import build_model  # noqa: E402
from synthset.recipes import recipe  # noqa: E402

CPU = torch.device("cpu")


def write(path: str, obj: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2))


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeat: int = 10) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * n ** 3 * repeat / (time.perf_counter() - t) / 1e9


def library_convolutions(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` with its im2col first layer (``FewChannelConv2d``) back as the ``nn.Conv2d``
    the public code uses, same weights."""
    for block in net.features:
        conv = block[0]
        if type(conv) is not torch.nn.Conv2d:
            plain = torch.nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                    padding=conv.padding)
            plain.load_state_dict(conv.state_dict())
            block[0] = plain
    return net


def reference_style(method, options, train, ipc: int, n_real: int, iterations: int) -> list[float]:
    """Iterations structured like the public code: per class, eager fp32, one real (no grad)
    and one synthetic forward, the method's own features and loss on that class's means."""
    g = torch.Generator().manual_seed(0)
    info = train.info
    by_class = train.indices_by_class()
    images = train.normalized(torch.cat([ix[:ipc] for ix in by_class])).requires_grad_(True)
    opt = torch.optim.SGD([images], lr=1.0, momentum=0.5)
    dsa = DSAConfig()
    out = []
    for _ in range(iterations):
        t = time.perf_counter()
        net = library_convolutions(build_model("ConvNet", info.channels, info.num_classes,
                                               info.size, generator=g))
        for p in net.parameters():
            p.requires_grad_(False)
        loss = torch.zeros(())
        for c in range(info.num_classes):
            ix = by_class[c][torch.randperm(len(by_class[c]), generator=g)[:n_real]]
            params = augment.sample(dsa, 1, max(n_real, ipc), tuple(info.size), generator=g, device=CPU)
            real = augment.apply(normalize(train.images[ix], info.mean, info.std), params, 1, dsa)
            syn = augment.apply(images[c * ipc:(c + 1) * ipc], params, 1, dsa)
            with torch.no_grad():
                rm = tuple(f.mean(0, keepdim=True) for f in method.features(net, real, options))
            sm = tuple(f.mean(0, keepdim=True) for f in method.features(net, syn, options))
            loss = loss + method.match(rm, sm, options)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(time.perf_counter() - t)
    return out


def ours(method_name, train, ipc: int, n_real: int, iterations: int, **engine) -> dict:
    # each variant starts like a fresh process: compiled code of earlier variants (other
    # shapes, precisions, layouts) would otherwise count against dynamo's recompile limit
    torch._dynamo.reset()
    data, cfg = recipe("dm-paper").configs(
        distill={"method": method_name, "ipc": ipc},
        engine={"iterations": iterations, "batch_real": n_real, "checkpoint_every": 0, **engine})
    method = METHODS.get(method_name)
    options = method.options({})
    out = run_method(method, train, cfg, options, device=CPU, generator=torch.Generator().manual_seed(0),
                     log=print, progress=False)
    return out.metadata


REFERENCE = "reference-style per-class loop, eager fp32"
HEAP = "reference-style loop, freed memory kept in the heap"


def part_speed(args) -> None:
    train = load_dataset(DataConfig(name="mnist"), "train")
    res = {**header(sys.argv), "matmul_gflops": {"fp32": matmul_peak(torch.float32),
                                                 "bf16": matmul_peak(torch.bfloat16)}, "rows": []}
    print(res["matmul_gflops"], flush=True)
    configs = [(m, n_real, ipc) for m, n_real in (("dm", 256), ("datadam", 64)) for ipc in args.ipc
               if m in args.methods]
    refs = {}

    def record(method_name, n_real, ipc, variant, secs, meta):
        s_it = statistics.median(secs[1:])  # the first pays compilation
        row = {"method": method_name, "ipc": ipc, "batch_real": n_real, "variant": variant,
               "s_per_iteration": s_it, "iteration_seconds": secs,
               "precision": {k: v["precision"] for k, v in meta.get("precision", {}).items()},
               "flops_per_iteration": meta.get("flops_per_iteration")}
        refs.setdefault((method_name, ipc), s_it)
        row["speedup_vs_reference_style"] = refs[(method_name, ipc)] / s_it
        res["rows"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "iteration_seconds"}), flush=True)
        write(args.out, res)

    n = args.iterations + 1
    # The reference rows first, with glibc's default allocator as the public code runs; then
    # synthset's allocator setting (process-wide: synthset's runs set it themselves) and
    # the reference again under it, so the table shows what the allocator alone gives.
    for method_name, n_real, ipc in configs:
        method = METHODS.get(method_name)
        record(method_name, n_real, ipc, REFERENCE,
               reference_style(method, method.options({}), train, ipc, n_real, n), {})
    res["reuse_freed_memory"] = reuse_freed_memory()
    for method_name, n_real, ipc in configs:
        method = METHODS.get(method_name)
        record(method_name, n_real, ipc, HEAP,
               reference_style(method, method.options({}), train, ipc, n_real, n), {})
        for precision in ("fp32", "auto"):
            meta = ours(method_name, train, ipc, n_real, n, compile=True, precision=precision)
            record(method_name, n_real, ipc, f"--compile {precision}", meta["iteration_seconds"], meta)
    res["rows"].sort(key=lambda r: configs.index((r["method"], r["batch_real"], r["ipc"])))
    flops = {(r["method"], r["ipc"]): r["flops_per_iteration"] for r in res["rows"] if r["flops_per_iteration"]}
    for r in res["rows"]:
        f = flops.get((r["method"], r["ipc"]))
        r["gflop_per_s"] = f / r["s_per_iteration"] / 1e9 if f else None
        r["flops_per_iteration"] = f
    write(args.out, res)


def part_eval(args) -> None:
    data = DataConfig(name="mnist")
    train, test = load_dataset(data, "train"), load_dataset(data, "test")
    g = torch.Generator().manual_seed(0)
    idx = torch.cat([ix[torch.randperm(len(ix), generator=g)[:10]] for ix in train.indices_by_class()])
    x, y = train.normalized(idx), train.labels[idx]
    res = {**header(sys.argv), "set": "random real IPC 10, seed 0", "rows": []}
    for precision in args.precisions:
        tcfg = DATASETS.get("mnist").train_config(TrainConfig(epochs=args.epochs, compile=True,
                                                              precision=precision))
        out = Path(args.root) / f"eval-{precision}"
        rep = evaluate(x, y, test, EvalConfig(runs=args.runs, train=tcfg), device=CPU, out_dir=out,
                       progress=False)
        m = rep["models"]["ConvNet"]
        row = {"precision": precision, "resolved": m["precision"], "mean": m["mean"], "std": m["std"],
               "runs": m["runs"], "train_seconds": m["train_seconds"], "epochs": args.epochs}
        res["rows"].append(row)
        print(json.dumps(row), flush=True)
        write(args.out, res)


def part_distill(args) -> None:
    data = DataConfig(name="mnist")
    test = load_dataset(data, "test")
    res = {**header(sys.argv), "recipe": recipe("mnist-dm-fast").tag, "rows": []}
    for precision in args.precisions:
        d, cfg = recipe("mnist-dm-fast").configs(engine={"precision": precision})
        run = Path(args.root) / f"distill-{precision}"
        t = time.perf_counter()
        sset = distill(d, cfg, out_dir=run, overwrite=True, progress=False)
        seconds = time.perf_counter() - t
        tcfg = DATASETS.get("mnist").train_config(TrainConfig(epochs=args.epochs, compile=True,
                                                              precision="fp32"))
        rep = evaluate(*sset.decoded(), test, EvalConfig(runs=args.runs, train=tcfg), device=CPU,
                       out_dir=run, progress=False)
        m = rep["models"]["ConvNet"]
        row = {"precision": precision,
               "resolved": {k: v["precision"] for k, v in sset.metadata["precision"].items()},
               "distill_seconds": seconds, "median_iteration_seconds": sset.metadata["median_iteration_seconds"],
               "mean": m["mean"], "std": m["std"], "runs": m["runs"], "eval_epochs": args.epochs}
        res["rows"].append(row)
        print(json.dumps(row), flush=True)
        write(args.out, res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=("speed", "eval", "distill"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--root", default="runs/precision")
    ap.add_argument("--ipc", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--methods", nargs="+", default=["dm", "datadam"], choices=["dm", "datadam"],
                    help="speed: the methods timed")
    ap.add_argument("--iterations", type=int, default=5, help="timed iterations per variant")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "auto"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    {"speed": part_speed, "eval": part_eval, "distill": part_distill}[args.part](args)


if __name__ == "__main__":
    main()
