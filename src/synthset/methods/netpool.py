"""A pool of partially trained networks to match in: IDM's "efficient and enriched model
sampling" (Zhao et al., "Improved Distribution Matching for Dataset Condensation", CVPR 2023,
Sec. 3.2), an option of the matching methods (``MatchingOptions.net_pool``).

DM matches in a freshly initialised network every iteration; random networks' embeddings
separate classes only coarsely. IDM keeps a queue of networks that are trained a little on
real data while they serve, so the matched embeddings range from random to partly
discriminative. Our version, chosen for a 2-core CPU budget: every ``refresh`` iterations a
fresh network joins the queue (the oldest leaves once it holds ``size``); each iteration
matches in one network drawn uniformly from the queue and then trains *that* network for
``steps`` SGD steps on ``batch`` real images drawn from the whole training split (no
augmentation, as IDM; SGD with the evaluation protocol's lr, momentum 0.9, weight decay 5e-4),
under the precision the run chose for its forward+backward pass (bf16 autocast about halves
this step on a CPU with AMX).
IDM trains two other queued networks for 10 steps of 256 images each per iteration: on
MNIST 1.47 TFLOP, 18x the FLOPs of a DM iteration at real batch 64.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Callable

import torch
import torch.nn.functional as F

from ..data.base import normalize
from .compiled import compiled_cross_entropy


class NetPool:
    """The queue, its SGD state and its schedule. All randomness comes from the generator
    passed to ``next``/``train``, so a run resumed from ``state()`` continues exactly."""

    def __init__(self, *, size: int, refresh: int, steps: int, batch: int, lr: float,
                 build: Callable[[torch.Generator | None], torch.nn.Module],
                 images: torch.Tensor, labels: torch.Tensor, mean, std,
                 compile: bool = False) -> None:
        if size < 1 or refresh < 1 or steps < 0 or batch < 1 or lr <= 0:
            raise ValueError(f"net pool: size, refresh and batch must be >= 1, steps >= 0 and lr > 0 "
                             f"(got size={size}, refresh={refresh}, steps={steps}, batch={batch}, lr={lr})")
        self.size, self.refresh, self.steps, self.batch, self.lr = size, refresh, steps, batch, lr
        self.build = build
        self.images, self.labels = images, labels.to(images.device)
        self.mean, self.std = mean, std
        self.nets: list[torch.nn.Module] = []
        self.opts: list[torch.optim.SGD] = []
        self.trained_steps: list[int] = []
        self._undo: dict = {}
        self.done = False  # the current iteration's training finished (nothing to roll back)
        self._loss = compiled_cross_entropy(build(None).to(images.device)) if compile else None

    def _optimizer(self, net) -> torch.optim.SGD:
        return torch.optim.SGD(net.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4)

    def _push(self, net) -> None:
        if len(self.nets) == self.size:
            self._undo["popped"] = (self.nets.pop(0), self.opts.pop(0), self.trained_steps.pop(0))
        self._undo["pushed"] = True
        self.nets.append(net)
        self.opts.append(self._optimizer(net))
        self.trained_steps.append(0)

    def begin(self) -> None:
        """Mark the start of an iteration: what follows until ``train`` returns can be
        rolled back."""
        self._undo, self.done = {}, False

    def next(self, iteration: int, generator: torch.Generator) -> int:
        """The index of the network to match in at ``iteration`` (a fresh one joins first
        when the schedule says so). Its parameters are frozen until ``train``. Starts an
        iteration that ``rollback`` undoes."""
        if iteration % self.refresh == 0 or not self.nets:
            self._push(self.build(generator))
        i = int(torch.randint(len(self.nets), (1,), generator=generator))
        for p in self.nets[i].parameters():
            p.requires_grad_(False)
        return i

    def train(self, i: int, generator: torch.Generator, *, autocast=None) -> None:
        """``steps`` SGD steps of network ``i`` on random real batches, under ``autocast``
        (a context factory: the run's forward+backward precision; weights and SGD stay fp32)."""
        autocast = autocast or contextlib.nullcontext
        net, opt = self.nets[i], self.opts[i]
        self._undo["trained"] = (i, {k: v.clone() for k, v in net.state_dict().items()},
                                 copy.deepcopy(opt.state_dict()), self.trained_steps[i])
        params = list(net.parameters())
        for p in params:
            p.requires_grad_(True)
        for _ in range(self.steps):
            idx = torch.randint(len(self.labels), (self.batch,), generator=generator).to(self.images.device)
            x = normalize(self.images[idx], self.mean, self.std)
            y = self.labels[idx]
            with autocast():
                if self._loss is not None:
                    loss = self._loss(dict(net.named_parameters()), dict(net.named_buffers()), x, y)
                else:
                    loss = F.cross_entropy(net(x), y)  # autocast runs it in fp32
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.trained_steps[i] += self.steps
        for p in params:
            p.requires_grad_(False)
        self.done = True

    def rollback(self) -> None:
        """Undo the current iteration's changes (a Ctrl-C or NaN before it completed), so
        the checkpoint holds the pool as it was when the iteration began."""
        undo, self._undo = self._undo, {}
        if "trained" in undo:
            i, weights, opt_state, steps = undo["trained"]
            self.nets[i].load_state_dict(weights)
            self.opts[i].load_state_dict(opt_state)
            self.trained_steps[i] = steps
        if undo.get("pushed"):
            self.nets.pop(), self.opts.pop(), self.trained_steps.pop()
        if "popped" in undo:
            net, opt, steps = undo["popped"]
            self.nets.insert(0, net), self.opts.insert(0, opt), self.trained_steps.insert(0, steps)

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Tensors (weights, buffers, momentum) and metadata to checkpoint the pool."""
        tensors: dict[str, torch.Tensor] = {}
        for k, (net, opt) in enumerate(zip(self.nets, self.opts)):
            for name, v in net.state_dict().items():
                tensors[f"pool.{k}.w.{name}"] = v.detach().cpu().contiguous()
            for j, p in enumerate(net.parameters()):
                buf = opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    tensors[f"pool.{k}.m.{j}"] = buf.detach().cpu().contiguous()
        return tensors, {"pool_nets": len(self.nets), "pool_trained_steps": list(self.trained_steps)}

    def load(self, tensors: dict[str, torch.Tensor], meta: dict, device) -> None:
        """Rebuild the queue saved by ``state``."""
        self.nets, self.opts, self.trained_steps = [], [], []
        for k in range(meta["pool_nets"]):
            net = self.build(None)
            prefix = f"pool.{k}.w."
            net.load_state_dict({n[len(prefix):]: v.to(device) for n, v in tensors.items()
                                 if n.startswith(prefix)})
            self._push(net)
            for j, p in enumerate(net.parameters()):
                if f"pool.{k}.m.{j}" in tensors:
                    self.opts[-1].state[p]["momentum_buffer"] = tensors[f"pool.{k}.m.{j}"].to(device)
        self.trained_steps = list(meta["pool_trained_steps"])
