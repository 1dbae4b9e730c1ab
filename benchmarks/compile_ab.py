"""A/B in one process tree: 100 DM IPC 10 iterations (MNIST, real batch 64, --compile) with the
synthetic path compiled vs eager (patched back). Prints one JSON line per run.

  for m in eager-syn compiled eager-syn compiled; do python benchmarks/compile_ab.py $m; done
"""
import sys, time, json, torch
import sys as _sys; _sys.path.insert(0, __import__('os').path.dirname(__file__))  # legacy_api
from legacy_api import DistillConfig, MatchConfig, match_loop
from synthset.data import load_dataset
import synthset.engine.fast as fast
from synthset.methods import METHODS

mode = sys.argv[1]
if mode == "eager-syn":
    class Eager:
        def __init__(self, template, features, loss_of):
            self.features, self.loss_of = features, loss_of
        def __call__(self, net, means, syn):
            return self.loss_of(self.features(net, syn), means)
    fast.CompiledSynLoss = Eager
from synthset.config import DataConfig
import sys as _hs; _hs.path.insert(0, __import__('os').path.dirname(__file__))  # noqa: E702
from header import header  # noqa: E402
train = load_dataset(DataConfig(name="mnist"), "train")
cfg = DistillConfig(method="dm", ipc=10, seed=0, match=MatchConfig(iterations=100, batch_real=64, compile=True, checkpoint_every=0))
t0 = time.perf_counter()
out = match_loop(METHODS.get("dm"), train, cfg, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0), log=lambda m: None, progress=False)
its = out.metadata["iteration_seconds"]
print(json.dumps({**header(sys.argv), "mode": mode, "total_s": time.perf_counter() - t0, "first_s": its[0], "median_s": sorted(its[5:])[len(its[5:]) // 2]}))
