"""Coreset baselines, the reference rows of every distillation paper (DC, Table 1):
random selection, herding (Welling, 2009) and greedy k-center (Sener & Savarese, 2018),
per class, in a feature space (by default the embedding of a ConvNet trained on the full
training set, as in the DC paper)."""
from __future__ import annotations

import dataclasses
import hashlib
import math

import torch

from ..atomic import write_safetensors
from ..compute import fixed
from ..config import CoresetConfig, DistillConfig, TrainConfig
from ..data.base import ImageData, class_indices
from ..data.download import cache_dir
from ..flops import inference_flops, train_step_flops
from ..models import build_model
from ..synthetic import MethodOutput
from ..training import run_seed, train_network
from .base import Method, register_method

FEATURE_STEPS = 200  # minimum SGD steps for the trained feature net
# Pixels per embedding batch: 1024 MNIST images. The first conv output of a width-128
# ConvNet is then ~400 MB whatever the resolution (a fixed 1024 took 4.4 GiB on MHIST 64 px).
EMBED_PIXELS = 1024 * 28 * 28


def herding(features: torch.Tensor, k: int) -> torch.Tensor:
    """Herding (Welling, ICML 2009; iCaRL's Alg. 4): greedily pick the sample that keeps
    the running mean of the picked features closest to the class mean,
    p_t = argmin_i || mu - (sum_{j<t} f_j + f_i) / t ||. Returns k indices in pick order."""
    mu = features.mean(0)
    picked: list[int] = []
    total = torch.zeros_like(mu)
    available = torch.ones(features.shape[0], dtype=torch.bool, device=features.device)
    for t in range(1, k + 1):
        dist = torch.linalg.vector_norm(mu - (total + features) / t, dim=1)
        dist[~available] = float("inf")
        i = int(torch.argmin(dist))
        picked.append(i)
        available[i] = False
        total = total + features[i]
    return torch.tensor(picked, dtype=torch.long)


def kcenter(features: torch.Tensor, k: int) -> torch.Tensor:
    """Greedy k-center (Sener & Savarese, ICLR 2018, Alg. 1), a 2-approximation of the
    minimax facility location: start from the sample nearest the class mean, then add the
    sample farthest from its nearest chosen center. Returns k indices in pick order."""
    first = int(torch.argmin(torch.linalg.vector_norm(features - features.mean(0), dim=1)))
    picked = [first]
    mind = torch.linalg.vector_norm(features - features[first], dim=1)
    for _ in range(1, k):
        i = int(torch.argmax(mind))
        picked.append(i)
        mind = torch.minimum(mind, torch.linalg.vector_norm(features - features[i], dim=1))
    return torch.tensor(picked, dtype=torch.long)


def embed_batch(size: tuple[int, int]) -> int:
    """Images per embedding batch at this resolution: EMBED_PIXELS / (H * W), at least 1."""
    return max(1, EMBED_PIXELS // (size[0] * size[1]))


@torch.no_grad()
def embed_all(net, train: ImageData, device, batch: int | None = None) -> torch.Tensor:
    net.eval().to(device)
    batch = batch or embed_batch(train.info.size)
    out = []
    for i in range(0, len(train), batch):
        idx = torch.arange(i, min(i + batch, len(train)))
        out.append(net.embed(train.normalized(idx, device=device)).float())
    return torch.cat(out)


def feature_epochs(train: ImageData, cfg: CoresetConfig) -> int:
    """Epochs of the trained feature net: enough for FEATURE_STEPS SGD steps of batch 256."""
    return cfg.feature_epochs or max(1, math.ceil(FEATURE_STEPS / math.ceil(len(train) / 256)))


def selection_flops(train: ImageData, cfg: CoresetConfig) -> int:
    """Network FLOPs of making a coreset: none for random or pixel features; one forward per
    training image for a random feature net; plus the feature net's training (forward and
    backward per image per epoch) for a trained one. Distances count as zero, as in flops.py."""
    if cfg.features == "pixels":
        return 0
    info = train.info
    net = build_model(cfg.feature_model or "ConvNet", info.channels, info.num_classes, info.size)
    shape = (info.channels, *info.size)
    total = inference_flops(net, shape) * len(train)
    if cfg.features == "trained":
        total += int(train_step_flops(net, shape)) * len(train) * feature_epochs(train, cfg)
    return total


def fingerprint(train: ImageData) -> str:
    """12 hex digits of a SHA-256 over the split's pixels and labels."""
    h = hashlib.sha256(train.images.contiguous().numpy().tobytes())
    h.update(train.labels.numpy().tobytes())
    return h.hexdigest()[:12]


def feature_net(train: ImageData, cfg: CoresetConfig, seed: int, device, log) -> torch.nn.Module:
    """The feature extractor: random or trained on the full split (cached on disk, since
    herding and k-center at every IPC share it)."""
    info = train.info
    cfg = with_feature_model(cfg, "ConvNet")
    g = torch.Generator().manual_seed(run_seed(seed, "feature-net", cfg.feature_model))
    net = build_model(cfg.feature_model, info.channels, info.num_classes, info.size, generator=g)
    if cfg.features == "random":
        return net
    epochs = feature_epochs(train, cfg)
    # the data's fingerprint is in the key: two subsets of one size (membership halves) differ
    key = (f"{info.name}-{info.size[0]}-{len(train)}-{fingerprint(train)}-{cfg.feature_model}"
           f"-e{epochs}-s{seed}")
    path = cache_dir() / "feature_nets" / f"{key}.safetensors"
    from safetensors.torch import load_file
    if path.exists():
        try:
            net.load_state_dict(load_file(str(path)))
            log(f"feature net: loaded {path}")
            return net
        except Exception as e:  # a corrupt or foreign cache entry is retrained, not trusted
            log(f"feature net: {path} cannot be read ({e}); training it again")
    log(f"feature net: training {cfg.feature_model} on all {len(train)} training images for "
        f"{epochs} epoch(s) (cached afterwards at {path})")
    tcfg = TrainConfig(epochs=epochs, augment=False, precision="fp32")  # as cached so far
    train_network(net, train.images, train.labels, info, tcfg, generator=g,
                  compute=fixed(device, tcfg.precision), desc="feature net")
    # atomic: torchrun ranks train the same net side by side
    write_safetensors(path, {k: v.detach().cpu().contiguous()
                             for k, v in net.state_dict().items()})
    return net


def with_feature_model(cfg: CoresetConfig, model: str) -> CoresetConfig:
    """``cfg`` with its feature network named (unset: the run's ``--model``)."""
    return cfg if cfg.feature_model else dataclasses.replace(cfg, feature_model=model)


def select_coreset(select, train: ImageData, ipc: int, cfg: CoresetConfig, *, seed: int,
                   device, log=print) -> torch.Tensor:
    """Indices of ``ipc`` images per class chosen by ``select(features, k)`` in ``cfg``'s
    feature space (class-major)."""
    by_class = class_indices(train, ipc)
    if cfg.features == "pixels":
        feats = train.normalized().flatten(1)
    else:
        feats = embed_all(feature_net(train, cfg, seed, device, log), train, device)
    return torch.cat([ix[select(feats[ix.to(feats.device)], ipc).cpu()] for ix in by_class])


class Coreset(Method):
    """A selection of real images per class."""

    def choose(self, train: ImageData, config: DistillConfig, *, device, generator,
               log) -> torch.Tensor:
        raise NotImplementedError

    def run(self, train: ImageData, config: DistillConfig, options=None, *, device, generator,
            log=print, **_) -> MethodOutput:
        index = self.choose(train, config, device=device, generator=generator, log=log)
        cfg = with_feature_model(config.coreset, config.engine.model)
        flops = selection_flops(train, cfg) if self.name != "random" else 0
        return MethodOutput(images=train.normalized(index), labels=train.labels[index].clone(),
                            metadata={"indices": index.tolist(), "distill_flops": flops})


@register_method("random")
class RandomSelection(Coreset):
    order, color = 0, "#7f7f7f"
    citation = "random real images (the DC paper's baseline, Zhao et al., ICLR 2021)"
    summary = "random real images of each class"

    def choose(self, train, config, *, device, generator, log):
        return torch.cat([ix[torch.randperm(len(ix), generator=generator)[:config.ipc]]
                          for ix in class_indices(train, config.ipc)])


class FeatureCoreset(Coreset):
    select = staticmethod(herding)

    def choose(self, train, config, *, device, generator, log):
        cfg = with_feature_model(config.coreset, config.engine.model)
        return select_coreset(self.select, train, config.ipc, cfg, seed=config.seed,
                              device=device, log=log)


@register_method("herding")
class Herding(FeatureCoreset):
    order, color = 1, "#8c564b"
    citation = "Welling, Herding dynamical weights to learn, ICML 2009"
    summary = "greedy running-mean matching of each class's features"
    select = staticmethod(herding)


@register_method("kcenter")
class KCenter(FeatureCoreset):
    order, color = 2, "#9467bd"
    citation = "Sener & Savarese, Active learning for CNNs: a core-set approach, ICLR 2018"
    summary = "greedy k-center cover of each class's features"
    select = staticmethod(kcenter)
