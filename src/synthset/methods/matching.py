"""What the distribution-matching methods (DM, DataDAM) share: a method is the per-image
features it matches (``features``) and the loss on their per-class means (``match``); one
engine step samples a network (fresh, or from IDM's pool), a real batch per class and one
siamese DSA draw, and takes ``inner_steps`` image steps against the real class means."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from .. import augment
from ..config import Options, check, opt
from ..flops import count_flops, train_step_flops
from ..models import build_model
from .base import LearnedMethod


def class_means(features: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes * n, ...) per-image features, class-major -> (classes, d) per-class means."""
    return features.reshape(classes, -1, features[0].numel()).mean(1)


@torch.no_grad()
def features_no_grad(features, net, x: torch.Tensor, *, chunk: int = 0,
                     autocast=None) -> tuple[torch.Tensor, ...]:
    """``features(net, x)`` without autograd (the real batch carries no gradient to the
    synthetic images), in chunks of ``chunk`` images (0 = all at once)."""
    autocast = autocast or contextlib.nullcontext
    step = x.shape[0] if chunk <= 0 else chunk
    parts = []
    for i in range(0, x.shape[0], step):
        with autocast():
            parts.append(tuple(f.float() for f in features(net, x[i:i + step])))
    return tuple(torch.cat(fs) for fs in zip(*parts))


def embed_no_grad(net, x: torch.Tensor, *, chunk: int = 0, autocast=None) -> torch.Tensor:
    """No-grad embeddings of ``x`` (see ``features_no_grad``)."""
    return features_no_grad(lambda n, v: (n.embed(v),), net, x, chunk=chunk, autocast=autocast)[0]


@dataclass(frozen=True, kw_only=True)
class MatchingOptions(Options):
    """Options of the distribution-matching loop (DM, DataDAM)."""

    embed_chunk: int = opt(0, "real images per no-grad forward (0: one class batch; with "
                              "--compile, 640)")
    inner_steps: int = opt(1, "image updates per sampled network and real batch (1, as the "
                              "papers; more reuse the real class means)")
    net_pool: int = opt(0, "match in a queue of up to N partially trained networks (IDM's model "
                           "sampling) instead of a fresh one per iteration (0: fresh)")
    net_pool_refresh: int = opt(10, "with --net-pool: a fresh network joins every K iterations")
    net_train_steps: int = opt(1, "with --net-pool: SGD steps on real data for the matched "
                                  "network per iteration")
    net_train_batch: int = opt(256, "with --net-pool: real images per such step")
    net_train_lr: float = opt(0.01, "with --net-pool: lr of those steps")
    experts: int = opt(0, "match in K networks trained once on the real training split, each "
                          "at a random interpolation of its initial and final weights (DANCE); "
                          "0: a fresh random network per iteration")
    expert_steps: int = opt(200, "with --experts: SGD steps to train each expert")
    expert_batch: int = opt(256, "with --experts: real images per such step")
    expert_lr: float = opt(0.01, "with --experts: lr of those steps (x0.1 at half)")
    expert_mix: float = opt(1.0, "with --experts: the mixing weight is drawn from [0, MIX] "
                                 "(0: initial weights, 1: trained)")
    ce_weight: float = opt(0.0, "with --experts or --net-pool: weight of a cross-entropy of the "
                                "synthetic images (IDM's class-aware term, DANCE's calibration)")
    ce_net: str = opt("matched", "the network of that cross-entropy: the matched one (its "
                                 "classifier on the embedding already computed: nearly free) or "
                                 "the sampled expert's trained weights (DANCE; one more forward "
                                 "and backward)", choices=("matched", "expert"))

    def __post_init__(self) -> None:
        check(self.inner_steps >= 1, f"inner_steps must be >= 1, got {self.inner_steps}")
        check(self.net_pool >= 0, f"net_pool must be >= 0 (0 = a fresh network per iteration), "
                                  f"got {self.net_pool}")
        check(self.net_pool_refresh >= 1 and self.net_train_batch >= 1
              and self.net_train_steps >= 0 and self.net_train_lr > 0,
              "net_pool_refresh and net_train_batch must be >= 1, net_train_steps >= 0, "
              "net_train_lr > 0")
        check(self.embed_chunk >= 0, "embed_chunk must be >= 0")
        check(self.experts >= 0 and self.expert_steps >= 1 and self.expert_batch >= 1
              and self.expert_lr > 0 and 0 < self.expert_mix <= 1,
              "experts must be >= 0, expert_steps and expert_batch >= 1, expert_lr > 0 and "
              "expert_mix in (0, 1]")
        check(not (self.experts and self.net_pool),
              "--experts and --net-pool are two ways to choose the matched network: use one")
        check(self.ce_weight >= 0, f"ce_weight must be >= 0, got {self.ce_weight}")
        check(not self.ce_weight or self.experts or self.net_pool,
              "--ce-weight needs trained networks: add --experts K (e.g. 3) or --net-pool K")
        check(self.ce_net in ("matched", "expert"), f"ce_net must be matched|expert, got "
                                                    f"{self.ce_net!r}")
        check(self.ce_net == "matched" or self.experts or not self.ce_weight,
              "--ce-net expert needs --experts K")


@dataclass
class MatchingAux:
    """Per-run helpers: the network pool and the compiled real and synthetic paths. The
    engine calls begin/rollback/state/load, which only the pool needs."""

    pool: Optional[object] = None
    experts: Optional[object] = None
    embed_real: Optional[object] = None
    syn_loss: Optional[object] = None
    setup: Optional[dict] = None  # work done before the first iteration (the experts')

    def record(self) -> Optional[dict]:
        """What the runner records of the setup: its seconds count against --max-time and
        in the set's time; its FLOPs in the set's FLOPs."""
        return self.setup

    def begin(self) -> None:
        if self.pool is not None:
            self.pool.begin()

    def rollback(self) -> None:
        if self.pool is not None:
            self.pool.rollback()

    def state(self):
        return self.pool.state() if self.pool is not None else ({}, {})

    def load(self, tensors, meta, device) -> None:
        if self.pool is not None:
            self.pool.load(tensors, meta, device)


class EmbeddingMatching(LearnedMethod):
    """Subclasses define ``features`` (what is averaged per class) and ``match`` (the loss
    on the class means)."""

    Options: ClassVar[type] = MatchingOptions
    default_lr_img: ClassVar[float] = 1.0

    def features(self, net, x: torch.Tensor, options) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def match(self, real_means: tuple[torch.Tensor, ...], syn_means: tuple[torch.Tensor, ...],
              options) -> torch.Tensor:
        raise NotImplementedError

    def real_means(self, net, real: torch.Tensor, classes: int, options=None, *, chunk: int = 0,
                   autocast=None, embed_real=None, precision: str = "fp32") -> tuple[torch.Tensor, ...]:
        """Per-class means of the real batch's features, without autograd; ``embed_real``, if
        given, is the compiled path (``methods.compiled.CompiledEmbed``, run at ``precision``).
        ``options`` None: the method's defaults."""
        options = options or self.Options()
        if embed_real is not None:
            real_f = embed_real.features(net, real, precision)
        else:
            real_f = features_no_grad(lambda n, v: self.features(n, v, options), net, real,
                                      chunk=chunk, autocast=autocast)
        return tuple(self.class_stats(f, classes) for f in real_f)

    def draws(self, options, stats: tuple[torch.Tensor, ...],
              generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Random tensors the loss needs besides the real statistics (a characteristic
        function's frequencies), drawn from the run's generator after the real pass and
        appended to the statistics ``match`` receives; none by default."""
        return ()

    def class_stats(self, features: torch.Tensor, classes: int) -> torch.Tensor:
        """What ``match`` compares per class: the class means (DM, DataDAM); a method that
        needs each image's features (a kernel MMD) returns ``(classes, n, d)`` instead."""
        return class_means(features, classes)

    def reduce_stats(self, ctx, stats, positions):
        """The real batch's statistics over every rank (under torchrun each holds a shard)."""
        return tuple(ctx.reduce_means(stats, positions))

    @staticmethod
    def _ce_matched(options) -> bool:
        return bool(getattr(options, "ce_weight", 0)) and options.ce_net == "matched"

    def syn_features(self, net, x: torch.Tensor, options) -> tuple[torch.Tensor, ...]:
        """The synthetic pass's outputs: ``features``, plus the matched network's logits on
        the embedding (the last feature) where the cross-entropy term runs through it."""
        feats = self.features(net, x, options)
        return feats + (net.classifier(feats[-1]),) if self._ce_matched(options) else feats

    def syn_objective(self, feats: tuple[torch.Tensor, ...], real_stats, classes: int,
                      options) -> torch.Tensor:
        """``match`` of the synthetic class statistics against the real ones, plus the
        weighted cross-entropy of the logits ``syn_features`` added (class-major labels)."""
        logits = None
        if self._ce_matched(options):
            feats, logits = feats[:-1], feats[-1]
        loss = self.match(real_stats, tuple(self.class_stats(f.float(), classes) for f in feats),
                          options)
        if logits is not None:
            from .experts import calibration_loss
            labels = torch.arange(classes, device=logits.device).repeat_interleave(
                logits.shape[0] // classes)
            loss = loss + options.ce_weight * calibration_loss(logits, labels)
        return loss

    def syn_loss(self, net, real_means: tuple[torch.Tensor, ...], syn: torch.Tensor, classes: int,
                 options=None, *, autocast=None) -> torch.Tensor:
        """The synthetic batch's loss (with autograd) against ``real_means``."""
        options = options or self.Options()
        autocast = autocast or contextlib.nullcontext
        with autocast():
            syn_f = self.syn_features(net, syn, options)
        return self.syn_objective(syn_f, real_means, classes, options)

    def loss(self, net, real: torch.Tensor, syn: torch.Tensor, classes: int, options=None, *,
             chunk: int = 0, autocast=None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The matching loss of ``syn`` against ``real`` in ``net`` (``generator``: for the
        method's ``draws``; default seeded 0)."""
        options = options or self.Options()
        means = self.real_means(net, real, classes, options, chunk=chunk, autocast=autocast)
        means = means + self.draws(options, means, generator or torch.Generator().manual_seed(0))
        return self.syn_loss(net, means, syn, classes, options, autocast=autocast)

    def prepare(self, ctx) -> MatchingAux:
        o, ec, info = ctx.options, ctx.engine, ctx.info
        aux = MatchingAux()
        if o.net_pool:
            from .netpool import NetPool
            aux.pool = NetPool(size=o.net_pool, refresh=o.net_pool_refresh, steps=o.net_train_steps,
                               batch=o.net_train_batch, lr=o.net_train_lr, build=ctx.build_net,
                               images=ctx.pool, labels=ctx.train.labels, mean=info.mean,
                               std=info.std, compile=ec.compile)
        if o.experts:
            aux.experts, aux.setup = self.expert_bank(ctx)
        if ec.compile:
            from .compiled import CompiledEmbed, CompiledSynLoss
            template = build_model(ec.model, info.channels, ctx.classes, info.size).to(ctx.device)
            aux.embed_real = CompiledEmbed(template, ctx.device, chunk=o.embed_chunk or 640,
                                           features=lambda n, x: self.features(n, x, o))
            aux.syn_loss = CompiledSynLoss(
                template, lambda n, x: self.syn_features(n, x, o),
                lambda feats, means: self.syn_objective(feats, means, ctx.classes, o))
        return aux

    def layout_knob(self, ctx):
        # the compiled synthetic path picks its memory layout (methods.compiled)
        return getattr(ctx.aux, "syn_loss", None) if ctx.device.type == "cpu" else None

    def expert_bank(self, ctx):
        """The run's trained experts (``methods.experts``), from the cache where it holds
        them, and the record of their training (seconds, FLOPs, cache use)."""
        from ..autotune import native_bf16
        from ..data.download import cache_dir
        from ..compute import autocast
        from ..training import run_seed
        from .coreset import fingerprint
        from .experts import ExpertBank
        o, ec, info, train = ctx.options, ctx.engine, ctx.info, ctx.train
        precision = ("bf16" if ec.precision == "bf16" or (ec.precision == "auto"
                                                         and native_bf16(ctx.device)) else "fp32")
        seed = ctx.config.seed
        key = (f"{info.name}-{info.size[0]}-{len(train)}-{fingerprint(train)}-{ec.model}"
               f"-s{seed}-n{o.expert_steps}x{o.expert_batch}-lr{o.expert_lr:g}-{precision}")
        bank = ExpertBank(count=o.experts, steps=o.expert_steps, batch=o.expert_batch,
                          lr=o.expert_lr, mix=o.expert_mix,
                          build=ctx.build_net,
                          seeds=[run_seed(seed, "expert", ec.model, k) for k in range(o.experts)],
                          images=ctx.pool, labels=train.labels, mean=info.mean, std=info.std,
                          cache=cache_dir() / "experts", key=key, precision=precision,
                          autocast=autocast(ctx.device, precision), log=ctx.log)
        net = build_model(ec.model, info.channels, ctx.classes, info.size)
        flops = round(o.experts * o.expert_steps * o.expert_batch
                      * train_step_flops(net, (info.channels, *info.size)))
        return bank, {"setup_seconds": round(bank.train_seconds, 3), "setup_flops": flops,
                      "experts": {"count": o.experts, "cached": bank.cached, "key": key,
                                  "train_seconds": round(bank.train_seconds, 3),
                                  "precision": precision}}

    def step(self, ctx, state, generator: torch.Generator) -> float:
        o, ec, aux, classes = ctx.options, ctx.engine, ctx.aux, ctx.classes
        if aux.pool is not None:
            index = aux.pool.next(state.iteration, generator)
            net = aux.pool.nets[index]
        elif aux.experts is not None:
            aux.experts.sample(generator)
            net = aux.experts.net
        else:
            net = ctx.build_net(generator)
        real, pos = ctx.real_shard(generator)  # under torchrun: this rank's positions
        params = augment.sample(ec.dsa, classes, max(ctx.n_real, ctx.n_syn), tuple(ctx.info.size),
                                generator=generator, device=ctx.device)
        real_aug = ctx.memory_format(augment.apply(real, params.at(pos), classes, ec.dsa))
        means = self.real_means(net, real_aug, classes, o, chunk=o.embed_chunk or ctx.n_real,
                                autocast=ctx.real_autocast, embed_real=aux.embed_real,
                                precision=ctx.compute.precision_of("real"))
        means = self.reduce_stats(ctx, means, pos)  # the whole batch's statistics
        means = means + self.draws(o, means, generator)  # the same on every rank
        for inner in range(o.inner_steps):
            syn_aug = ctx.memory_format(augment.apply(state.decoded()[0], params, classes, ec.dsa))
            if aux.syn_loss is not None:
                with ctx.autocast():
                    loss = aux.syn_loss(net, means, syn_aug)
            else:
                loss = self.syn_loss(net, means, syn_aug, classes, o, autocast=ctx.autocast)
            if o.ce_weight and o.ce_net == "expert":
                loss = loss + o.ce_weight * self.calibration(ctx, syn_aug)
            current = state.step(loss)
            if not inner:  # the loss on a fresh network, comparable across inner_steps
                value = current
        if aux.pool is not None:
            aux.pool.train(index, generator, autocast=ctx.autocast)
        return value

    @staticmethod
    def calibration(ctx, syn: torch.Tensor) -> torch.Tensor:
        """The calibration term: cross-entropy of the (augmented, decoded, class-major)
        synthetic batch through the sampled expert's trained weights."""
        from .experts import calibration_loss
        labels = torch.arange(ctx.classes, device=syn.device).repeat_interleave(ctx.n_syn)
        with ctx.autocast():
            logits = ctx.aux.experts.trained()(syn)
        return calibration_loss(logits, labels)

    def bench(self, ctx, kind: str, precision: str):
        """One step of the run's own real or synthetic pass (compiled if the run is) on
        throwaway weights and inputs: the real pass on one chunk of the class batch."""
        o, aux, info, classes = ctx.options, ctx.aux, ctx.info, ctx.classes
        g = torch.Generator().manual_seed(0)
        net = ctx.build_net(g)
        ac = ctx.compute.at(kind, precision).autocast(kind)
        if kind == "real":
            per_class = max(1, min(ctx.n_real, (o.embed_chunk or (640 if aux.embed_real else
                                                                   ctx.n_real * classes)) // classes))
            real = ctx.memory_format(torch.randn(classes * per_class, info.channels, *info.size,
                                                 generator=g).to(ctx.device))
            return lambda: self.real_means(net, real, classes, o, chunk=real.shape[0], autocast=ac,
                                           embed_real=aux.embed_real, precision=precision)
        real = ctx.memory_format(torch.randn(classes * 4, info.channels, *info.size, generator=g)
                                 .to(ctx.device))
        means = self.real_means(net, real, classes, o)
        means = means + self.draws(o, means, g)
        syn = ctx.memory_format(torch.randn(classes * ctx.n_syn, info.channels, *info.size,
                                            generator=g).to(ctx.device)).requires_grad_()

        def step():
            if aux.syn_loss is not None:
                with ac():
                    loss = aux.syn_loss(net, means, syn)
            else:
                loss = self.syn_loss(net, means, syn, classes, o, autocast=ac)
            loss.backward()
        return step

    def iteration_flops(self, ctx) -> int:
        """FLOPs of one iteration (real forward + inner_steps x synthetic forward and
        backward, plus the pool network's training), counted by FlopCounterMode on meta
        tensors. DSA and element-wise ops (norms, attention maps) count as zero."""
        o, ec, info, classes = ctx.options, ctx.engine, ctx.info, ctx.classes
        net = build_model(ec.model, info.channels, classes, info.size).to("meta")
        for p in net.parameters():
            p.requires_grad_(False)
        real = torch.empty(classes * ctx.n_real, info.channels, *info.size, device="meta")
        syn = torch.empty(classes * ctx.n_syn, info.channels, *info.size, device="meta",
                          requires_grad=True)
        means: list = []  # the counted real pass's class means feed the synthetic pass
        real_flops = count_flops(lambda: means.append(
            self.real_means(net, real, classes, o, chunk=ctx.n_real)))
        means[0] = means[0] + self.draws(o, means[0], torch.Generator().manual_seed(0))
        syn_flops = count_flops(lambda: self.syn_loss(net, means[0], syn, classes, o).backward())
        pool_train = 0
        if o.net_pool and o.net_train_steps:
            trained = build_model(ec.model, info.channels, classes, info.size).to("meta")
            pool_train = round(o.net_train_steps * o.net_train_batch
                               * train_step_flops(trained, (info.channels, *info.size)))
        ce = 0  # the matched network's logits are inside syn_flops; an expert's pass is not
        if o.ce_weight and o.ce_net == "expert":
            syn2 = syn.detach().requires_grad_()
            ce = count_flops(lambda: torch.nn.functional.cross_entropy(
                net(syn2), torch.zeros(syn2.shape[0], dtype=torch.long, device="meta")).backward())
        return real_flops + o.inner_steps * (syn_flops + ce) + pool_train
