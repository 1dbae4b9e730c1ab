"""Membership inference against a model trained on a distilled set: from the model alone,
can an attacker tell which real images the set was made from? The attacks and their
metrics, as pure functions; the protocol that distils on a known half of the training split
(members) and trains shadow sets on other halves is built on them.

- Loss threshold (Yeom et al., CSF 2018): members have lower loss; score = -loss.
- LiRA, offline (Carlini et al., "Membership Inference Attacks From First Principles",
  S&P 2022, Sec. IV-C and Eq. 4 with only OUT models): the logit-scaled confidence
  phi = log(p_y / (1 - p_y)) of the true class is compared with its distribution under
  shadow models that did not see the example, a Gaussian per example; score = (phi - mu_out)
  / sigma_out, one-sided.
- Metrics: ROC-AUC and the true-positive rate at a low false-positive rate (1%, 0.1%), the
  measure that separates attacks that work on a few examples from chance (Carlini et al.),
  with Wilson score intervals from the number of audited examples.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from .metrics import roc_auc


@torch.no_grad()
def losses_and_phi(net, x: torch.Tensor, y: torch.Tensor, *, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example cross-entropy and logit-scaled confidence log(p_y / (1 - p_y)) of ``net``
    (in eval mode), computed stably from the logits: phi = z_y - logsumexp_{j != y} z_j."""
    net.eval()
    loss, phi = [], []
    for i in range(0, len(x), batch):
        z = net(x[i:i + batch]).double()
        t = y[i:i + batch]
        loss.append(F.cross_entropy(z, t, reduction="none"))
        zy = z.gather(1, t[:, None]).squeeze(1)
        others = z.scatter(1, t[:, None], -math.inf)
        phi.append(zy - torch.logsumexp(others, 1))
    return torch.cat(loss), torch.cat(phi)


def loss_scores(losses: torch.Tensor) -> torch.Tensor:
    """The loss-threshold attack's membership scores (higher = more likely a member)."""
    return -losses.double()


def lira_offline_scores(phi: torch.Tensor, shadow_out_phi: torch.Tensor, *,
                        min_std: float = 1e-3) -> torch.Tensor:
    """Offline LiRA: ``phi`` (N,) of the target model, ``shadow_out_phi`` (S, N) of S shadow
    models that did not train on each example; the score is phi's z-score under the
    per-example OUT Gaussian (Carlini et al. 2022, Eq. 4 with the IN term dropped)."""
    mu = shadow_out_phi.double().mean(0)
    sd = shadow_out_phi.double().std(0, unbiased=shadow_out_phi.shape[0] > 1).clamp_min(min_std)
    return (phi.double() - mu) / sd


def out_gaussian(shadow_phi: torch.Tensor, out: torch.Tensor, *, min_std: float = 1e-3):
    """Per example, the mean and (population) std of ``shadow_phi`` (S, N) over the shadows
    that left it out (``out``, (S, N) bool): the offline attack's OUT Gaussian. An example
    no shadow left out takes the mean over all; one left out by fewer than two, the std."""
    sp = shadow_phi.double()
    n_out = out.sum(0)
    w_mu = torch.where(n_out > 0, out, torch.ones_like(out)).double()
    w_sd = torch.where(n_out > 1, out, torch.ones_like(out)).double()
    mu = (sp * w_mu).sum(0) / w_mu.sum(0)
    mu_sd = (sp * w_sd).sum(0) / w_sd.sum(0)
    sd = (((sp - mu_sd) ** 2 * w_sd).sum(0) / w_sd.sum(0)).sqrt()
    return mu, sd.clamp_min(min_std)


def threshold_at_fpr(negatives: torch.Tensor, fpr: float) -> float:
    """The lowest threshold that at most ``fpr`` of ``negatives`` exceed (scores above it
    are flagged as members)."""
    neg = negatives.double().flatten().sort(descending=True).values
    allowed = int(math.floor(fpr * len(neg)))  # negatives that may lie above the threshold
    return float(neg[allowed]) if allowed < len(neg) else -math.inf


def tpr_at_fpr(scores: torch.Tensor, is_member: torch.Tensor, fpr: float) -> float:
    """The highest true-positive rate of a threshold on ``scores`` whose false-positive rate
    is at most ``fpr`` (members score high)."""
    s = scores.double()
    threshold = threshold_at_fpr(s[is_member == 0], fpr)
    return float((s[is_member == 1] > threshold).double().mean())


def wilson(rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``rate`` observed on ``n`` examples."""
    if n == 0:
        return (math.nan, math.nan)
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def auc_interval(auc: float, n_pos: int, n_neg: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of a ROC-AUC from the Hanley & McNeil (1982) standard error."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    se = math.sqrt((auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc))
                   / (n_pos * n_neg))
    return (max(0.0, auc - z * se), min(1.0, auc + z * se))


def attack_report(scores: torch.Tensor, is_member: torch.Tensor) -> dict:
    """ROC-AUC and TPR at 1% and 0.1% FPR, each with its 95% interval."""
    n_pos, n_neg = int((is_member == 1).sum()), int((is_member == 0).sum())
    auc = roc_auc(scores.double(), is_member.long())
    out = {"auc": auc, "auc_ci": auc_interval(auc, n_pos, n_neg), "members": n_pos,
           "non_members": n_neg}
    for fpr in (0.01, 0.001):
        tpr = tpr_at_fpr(scores, is_member, fpr)
        out[f"tpr_at_{fpr:g}_fpr"] = tpr
        out[f"tpr_at_{fpr:g}_fpr_ci"] = wilson(tpr, n_pos)
        out[f"fpr_{fpr:g}_resolvable"] = n_neg * fpr >= 1  # at least one negative above it
    return out


# ---------------------------------------------------------------- the protocol


def halves(n: int, seed: int) -> torch.Tensor:
    """A random half of ``range(n)`` as a boolean mask (the members of one split)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=g)[: n // 2]] = True
    return mask


def subset(data, mask: torch.Tensor):
    from .data.base import ImageData
    return ImageData(images=data.images[mask], labels=data.labels[mask], info=data.info)


class MadeSet(NamedTuple):
    """What a model trains on, and ``starts``: the indices in the members of the real images
    the set shows as they are (a subset, a coreset) or started from (a real or herding
    start); None where it started from noise."""
    images: torch.Tensor
    labels: torch.Tensor
    starts: Optional[torch.Tensor]


def make_set(kind: str, train, config, *, device, seed: int, log=print) -> MadeSet:
    """The training set a model gets, made from ``train`` (the members): ``kind`` ``"set"``
    distils with ``config`` (a DistillConfig), ``"random"`` copies a random real subset of
    the same size, ``"full"`` is all of ``train``."""
    from .distill import run_method
    from .formation import decode
    from .methods import METHODS
    if kind == "full":
        return MadeSet(train.normalized(), train.labels, torch.arange(len(train)))
    if kind == "random":
        g = torch.Generator().manual_seed(seed)
        n = config.ipc * config.engine.factor ** 2
        idx = torch.cat([ix[torch.randperm(len(ix), generator=g)[:n]] for ix in train.indices_by_class()])
        return MadeSet(train.normalized(idx), train.labels[idx], idx)
    method = METHODS.get(config.method)
    out = run_method(method, train, config, method.options(config.options), device=device,
                     generator=torch.Generator().manual_seed(seed), log=log, progress=False)
    starts = out.metadata.get("start_indices", out.metadata.get("indices"))
    return MadeSet(*decode(out.images, out.labels, out.factor),
                   None if starts is None else torch.tensor(starts, dtype=torch.long))


def trained_models(images, labels, info, cfg, *, model: str, k: int, seed: int, compute,
                   records: Optional[list] = None):
    """``k`` fresh ``model``s trained on (images, labels) with the protocol ``cfg``, under
    the compute policy ``compute``; each training's record is appended to ``records`` (the
    DP-SGD accountant's epsilon is in it)."""
    from .models import build_model
    from .dpsgd import train_protocol
    from .training import run_seed
    nets = []
    for j in range(k):
        g = torch.Generator().manual_seed(run_seed(seed, "mia", j))
        net = build_model(model, info.channels, info.num_classes, info.size, generator=g)
        rec = train_protocol(net, images, labels, info, cfg, generator=g, compute=compute,
                             progress=False)
        if records is not None:
            records.append(rec)
        nets.append(net.to("cpu").eval())
    return nets


def membership_attack(kind: str, train, config, train_cfg, *, model: str = "ConvNet",
                      audited: int = 500, models: int = 2, shadows: int = 4, seed: int = 0,
                      device=torch.device("cpu"), compute=None, test=None, log=print) -> dict:
    """The membership protocol for one kind of set (``make_set``): members are a random half
    of the training split; the target set is made from them; ``models`` protocol models are
    trained on it; ``audited`` members and ``audited`` non-members are scored by the loss
    attack (mean loss over the models) and by offline LiRA against ``shadows`` shadow sets
    made the same way from other random halves (each audited example is OUT of the shadows
    whose half left it out). With ``test`` (the test split), the target models' mean test
    accuracy is reported beside the attack: what the set is worth to its user. ``compute``:
    how the models train (default: ``train_cfg``'s precision on ``device``, auto as fp32)."""
    from .compute import fixed
    compute = compute or fixed(device, train_cfg.precision)
    n = len(train)
    member = halves(n, seed)
    g = torch.Generator().manual_seed(seed + 1)
    ins = torch.nonzero(member).flatten()
    outs = torch.nonzero(~member).flatten()
    pick = torch.cat([ins[torch.randperm(len(ins), generator=g)[:audited]],
                      outs[torch.randperm(len(outs), generator=g)[:audited]]])
    is_member = member[pick].long()
    x, y = train.normalized(pick), train.labels[pick]

    accuracy = []

    def phis(mask, s, target=False):
        images, labels, _ = make_set(kind, subset(train, mask), config, device=device, seed=s, log=log)
        nets = trained_models(images, labels, train.info, train_cfg, model=model, k=models, seed=s,
                              compute=compute)
        if target and test is not None:
            from .evaluate import test_network
            accuracy.extend(100 * test_network(net, test, compute=fixed(torch.device("cpu")))["accuracy"]
                            for net in nets)
        stats = [losses_and_phi(net, x, y) for net in nets]
        return torch.stack([a for a, _ in stats]).mean(0), torch.stack([b for _, b in stats]).mean(0)

    log(f"membership ({kind}): target on members")
    loss, phi = phis(member, seed, target=True)
    shadow_phi, shadow_in = [], []
    for s in range(shadows):
        mask = halves(n, seed + 1000 + s)
        log(f"membership ({kind}): shadow {s + 1}/{shadows}")
        shadow_phi.append(phis(mask, seed + 1000 + s)[1])
        shadow_in.append(mask[pick])
    out = {"kind": kind, "model": model, "models": models, "shadows": shadows,
           "epochs": train_cfg.epochs, "audited": int(len(pick)),
           "loss": attack_report(loss_scores(loss), is_member)}
    if accuracy:
        out["target_test_accuracy"] = sum(accuracy) / len(accuracy)
    if shadows:
        mu, sd = out_gaussian(torch.stack(shadow_phi), ~torch.stack(shadow_in))
        out["lira_offline"] = attack_report((phi.double() - mu) / sd, is_member)
    return out
