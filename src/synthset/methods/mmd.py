"""Kernel distribution matching with second-order terms: DM's loop with its linear kernel
(mean matching) replaced by Gaussian kernels of several bandwidths (M3D: Zhang, Zhang, Li,
Chen, Xu & Zhang, "M3D: Dataset Condensation by Minimizing Maximum Mean Discrepancy", AAAI
2024), and optionally IID's per-class covariance matching and class centralisation (Deng,
Li, Li, Zhou & Fan, "Exploiting Inter-sample and Inter-feature Relations in Dataset
Distillation", CVPR 2024). ``--kernel cf`` matches the embeddings' empirical characteristic
functions at random frequencies instead (NCFM: Wang et al., "Dataset Distillation with Neural
Characteristic Function: A Minmax Perspective", CVPR 2025, without its learned frequency
sampler). ``--kernel linear`` with the extra weights at 0 is DM.

The real batch's statistics are each class's per-image embeddings, not their mean, so the
kernel sees the whole distribution; under torchrun each rank fills its positions of the
batch and one all-reduce assembles it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import check, opt
from .base import register_method
from .dm import dm_loss
from .matching import EmbeddingMatching, MatchingOptions


KERNELS = ("gaussian", "linear", "cf")
CF_SCALE = 300.0  # NCFM's; puts the image gradient near DM's (benchmarks/cf_gradient_scale.py)


@dataclass(frozen=True, kw_only=True)
class MMDOptions(MatchingOptions):
    kernel: str = opt("gaussian", "kernel of the MMD on the embeddings: gaussian (M3D, several "
                                  "bandwidths), linear (DM's mean matching) or cf (NCFM's "
                                  "characteristic-function discrepancy)", choices=KERNELS)
    bandwidths: tuple[float, ...] = opt((0.25, 1.0, 4.0), "comma-separated multiples of each "
                                                         "class's mean squared distance used as "
                                                         "Gaussian bandwidths")
    cov_weight: float = opt(0.0, "weight of the per-class covariance matching (IID)")
    central_weight: float = opt(0.0, "weight of the class centralisation: synthetic embeddings "
                                     "pulled to their real class mean (IID)")
    cf_freqs: int = opt(4096, "with --kernel cf: random frequencies per iteration (NCFM's 4096)")
    cf_alpha: float = opt(0.5, "with --kernel cf: weight of the amplitude term (the phase term "
                               "gets 1 - alpha)")
    cf_scale: float = opt(CF_SCALE, "with --kernel cf: the discrepancy's multiplier, which sets "
                                    "its step size under the image lr")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "bandwidths", tuple(float(b) for b in self.bandwidths))
        check(self.kernel in KERNELS, f"kernel must be {'|'.join(KERNELS)}, got {self.kernel!r}")
        check(self.cf_freqs >= 1 and 0 <= self.cf_alpha <= 1 and self.cf_scale > 0,
              "cf_freqs must be >= 1, cf_alpha in [0, 1] and cf_scale > 0")
        check(len(self.bandwidths) >= 1 and all(b > 0 for b in self.bandwidths),
              "bandwidths must be one or more positive numbers")
        check(self.cov_weight >= 0 and self.central_weight >= 0,
              "cov_weight and central_weight must be >= 0")


def sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances of (..., n, d) and (..., m, d) -> (..., n, m)."""
    return (a.pow(2).sum(-1)[..., :, None] + b.pow(2).sum(-1)[..., None, :]
            - 2 * a @ b.transpose(-1, -2)).clamp_min(0)


def gaussian_mmd(real: torch.Tensor, syn: torch.Tensor, scales: tuple[float, ...]) -> torch.Tensor:
    """M3D's objective (Zhang et al., AAAI 2024, Eq. 6: the biased empirical MMD^2 in the RKHS
    of a Gaussian kernel, Gretton et al. 2012, Eq. 5), summed over classes and averaged over
    bandwidths h = s * mean squared distance of the class's pooled features (detached):
    sum_c mean_s (h_s / 2) [mean k(r, r') + mean k(y, y') - 2 mean k(r, y)],
    k(x, y) = exp(-||x - y||^2 / h). The factor h / 2 makes each term tend to DM's
    ||mean r - mean y||^2 as h grows (k ~ 1 - d / h), so DM's image lr suits it.
    ``real`` (classes, n, d), ``syn`` (classes, m, d)."""
    real, syn = real.float(), syn.float()
    d_rr, d_ss, d_rs = sq_dists(real, real), sq_dists(syn, syn), sq_dists(real, syn)
    n, m = real.shape[1], syn.shape[1]
    pooled = (d_rr.sum((1, 2)) + d_ss.sum((1, 2)) + 2 * d_rs.sum((1, 2))) / (n + m) ** 2
    base = pooled.detach().clamp_min(1e-12)[:, None, None]
    loss = torch.zeros((), device=real.device)
    for s in scales:
        h = s * base
        mmd = ((-d_rr / h).exp().mean((1, 2)) + (-d_ss / h).exp().mean((1, 2))
               - 2 * (-d_rs / h).exp().mean((1, 2)))
        loss = loss + (h.flatten() / 2 * mmd).sum()
    return loss / len(scales)


def cf_discrepancy(real: torch.Tensor, syn: torch.Tensor, freqs: torch.Tensor,
                   alpha: float = 0.5) -> torch.Tensor:
    """NCFM's characteristic-function discrepancy (Wang et al., "Dataset Distillation with
    Neural Characteristic Function: A Minmax Perspective", CVPR 2025, arXiv:2502.20653, Sec. 3:
    the CFD split into amplitude and phase), summed over classes. Per class the embeddings are L2-normalised and
    the empirical characteristic function phi(t) = mean_j exp(i t.x_j) is taken at each
    frequency t (rows of ``freqs``, (F, d)); with amplitudes a = |phi| the discrepancy is
    mean_t sqrt(alpha (a_r - a_s)^2 + (1 - alpha) 2 (a_r a_s - Re phi_r conj(phi_s))).
    At alpha = 0.5 that is mean_t |phi_r(t) - phi_s(t)| / sqrt(2): the modulus, not its square
    (the squared form averaged over Gaussian t is a Gaussian-kernel MMD^2, Bochner).
    ``real`` (classes, n, d), ``syn`` (classes, m, d)."""
    t = freqs.float().t()
    parts = []
    for x in (real, syn):  # real and imaginary parts of phi, and its amplitude, per class
        proj = torch.nn.functional.normalize(x.float(), dim=-1) @ t  # (classes, n, F)
        re, im = proj.cos().mean(1), proj.sin().mean(1)
        parts.append((re, im, (re.pow(2) + im.pow(2)).clamp_min(1e-12).sqrt()))
    (re_r, im_r, amp_r), (re_s, im_s, amp_s) = parts
    amplitude = (amp_r - amp_s).pow(2)
    phase = (2 * (amp_r * amp_s - re_r * re_s - im_r * im_s)).clamp_min(1e-12)
    return (alpha * amplitude + (1 - alpha) * phase).sqrt().mean(-1).sum()


def covariance_loss(real: torch.Tensor, syn: torch.Tensor) -> torch.Tensor:
    """IID's covariance matching (Deng et al., CVPR 2024, Sec. 3.3): sum over classes of
    ||Cov(real_c) - Cov(syn_c)||_F^2 with Cov(X) = X_c^T X_c / n (X_c centred), computed
    through Gram matrices (n x m, never d x d): ||A^T A / n - B^T B / m||_F^2 =
    ||A A^T||^2 / n^2 + ||B B^T||^2 / m^2 - 2 ||A B^T||^2 / (n m)."""
    a = real.float() - real.float().mean(1, keepdim=True)
    b = syn.float() - syn.float().mean(1, keepdim=True)
    n, m = a.shape[1], b.shape[1]
    aa = (a @ a.transpose(-1, -2)).pow(2).sum((1, 2)) / n ** 2
    bb = (b @ b.transpose(-1, -2)).pow(2).sum((1, 2)) / m ** 2
    ab = (a @ b.transpose(-1, -2)).pow(2).sum((1, 2)) / (n * m)
    return (aa + bb - 2 * ab).sum()


def centralisation_loss(real: torch.Tensor, syn: torch.Tensor) -> torch.Tensor:
    """Class centralisation after IID (Deng et al., CVPR 2024, Sec. 3.2), in its plain form:
    sum over classes of the mean squared distance of each synthetic embedding to its real
    class mean, sum_c mean_j ||y_cj - mean_i r_ci||^2."""
    centre = real.float().mean(1, keepdim=True)
    return (syn.float() - centre).pow(2).sum(-1).mean(1).sum()


@register_method("mmd")
class MMD(EmbeddingMatching):
    Options = MMDOptions
    default_iterations = 20000
    default_batch_real = 256
    order, color = 3.5, "#17becf"
    citation = ("Zhang et al., M3D: Dataset Condensation by Minimizing Maximum Mean "
                "Discrepancy, AAAI 2024; Deng et al., IID, CVPR 2024")
    summary = ("Gaussian-kernel MMD of real and synthetic embeddings per class (M3D), optional "
               "covariance and centralisation terms (IID)")

    def features(self, net, x, options):
        return (net.embed(x),)

    def class_stats(self, features, classes):
        return features.reshape(classes, -1, features[0].numel())

    def reduce_stats(self, ctx, stats, positions):
        if positions is None:
            return tuple(stats)
        out = []  # each rank writes its shard's rows into the whole batch, one sum joins them
        for t in stats:
            full = t.new_zeros(t.shape[0], ctx.n_real, *t.shape[2:])
            full[:, positions.to(t.device)] = t
            out.append(full)
        ctx.world.sum_(out)
        return tuple(out)

    def draws(self, options, stats, generator):
        if options.kernel != "cf":
            return ()
        freqs = torch.randn(options.cf_freqs, stats[0].shape[-1], generator=generator,
                            device=generator.device)
        return (freqs.to(stats[0].device),)

    def match(self, real_means, syn_means, options):
        real, syn = real_means[0], syn_means[0]
        if options.kernel == "cf":
            loss = options.cf_scale * cf_discrepancy(real, syn, real_means[-1], options.cf_alpha)
        elif options.kernel == "gaussian":
            loss = gaussian_mmd(real, syn, options.bandwidths)
        else:
            loss = dm_loss(real.mean(1), syn.mean(1))
        if options.cov_weight:
            loss = loss + options.cov_weight * covariance_loss(real, syn)
        if options.central_weight:
            loss = loss + options.central_weight * centralisation_loss(real, syn)
        return loss
