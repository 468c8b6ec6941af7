"""Pre-training objectives: one small function per loss, formula in the docstring.

Notation: ``B`` batch, ``N`` patches, ``L`` text length, ``V`` vocabulary, ``τ`` temperature
(``s = 1/τ`` the logit scale), ``sg`` stop-gradient, ``CE`` cross-entropy, ``cos`` cosine.
Every loss is computed in float32 (safe under autocast) and returns a scalar tensor.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

from robust_mmr_pipeline.model.masking import IGNORE_INDEX
from robust_mmr_pipeline.model.vision import patchify


def _zero_like_graph(x: Tensor) -> Tensor:
    """A zero that stays connected to ``x`` (no unused parameters under DDP)."""
    return x.float().sum() * 0.0


# ---------------------------------------------------------------- reconstruction
def pixel_targets(images: Tensor, patch_size: int, norm_pix: bool = True) -> Tensor:
    """MIM targets ``[B, N, p*p*C]`` from clean images ``[B, C, H, W]``.

    With ``norm_pix``: ``y' = (y - mean(y)) / sqrt(var(y) + 1e-6)`` per patch (MAE / M3AE).
    """
    target = patchify(images.float(), patch_size)
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6).sqrt()
    return target


def mim_loss(
    pred: Tensor, target: Tensor, mask: Tensor, sample_weight: Tensor | None = None
) -> Tensor:
    """Masked-patch MSE.

    ``L_mim = Σ_{b,i} w_b m_bi ||ŷ_bi - y_bi||² / P  /  Σ_{b,i} w_b m_bi``

    Args:
        pred, target: ``[B, N, P]``.
        mask: bool ``[B, N]``, True = masked (only these count).
        sample_weight: ``[B]`` (0 drops a sample, e.g. an image replaced by modality dropping).
    """
    per_patch = (pred.float() - target.float()).pow(2).mean(dim=-1)
    weight = mask.float()
    if sample_weight is not None:
        weight = weight * sample_weight.float()[:, None]
    # Weights are 0/1 counts, so clamp(min=1) only guards the empty case (loss 0, no sync).
    return (per_patch * weight).sum() / weight.sum().clamp(min=1.0)


def mlm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """``L_mlm = mean_{t: label_t ≠ -100} -log softmax(logits_t)[label_t]``; ``[M, V]``, ``[M]``.

    0 (still connected to the graph) when no position is labelled.
    """
    total = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (labels != IGNORE_INDEX).sum().clamp(min=1)


def itm_loss(logits: Tensor, is_match: Tensor) -> Tensor:
    """``L_itm = CE(logits, y)``, ``logits`` ``[B, 2]``, ``y`` long ``[B]`` (1 = matched pair)."""
    return F.cross_entropy(logits.float(), is_match.long())


# ---------------------------------------------------------------- contrastive (GLA)
def info_nce(logits: Tensor) -> Tensor:
    """Symmetric InfoNCE with positives on the diagonal of ``logits`` ``[B, B]`` (row = text).

    ``L = ½ [ CE(S, I) + CE(S^T, I) ]``, ``S_ij = s · sim(t_i, v_j)``.
    """
    labels = torch.arange(logits.shape[0], device=logits.device)
    logits = logits.float()
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def gla_global_loss(text_emb: Tensor, image_emb: Tensor, logit_scale: Tensor) -> Tensor:
    """Global image–report alignment.

    ``L_glob = InfoNCE(s · T V^T)`` with ``T, V`` ``[B, d_c]`` L2-normalised projected CLS and
    ``s = exp(log_scale)`` clamped to ``<= 1/τ_min``.
    """
    return info_nce(logit_scale * text_emb.float() @ image_emb.float().t())


def filip_similarity(
    text_tokens: Tensor,
    text_valid: Tensor,
    image_tokens: Tensor,
    chunk_elements: int = 1 << 25,
) -> tuple[Tensor, Tensor]:
    """FILIP late-interaction similarities between every text and every image.

    With ``c_{ij,lp} = cos(t_il, v_jp)`` and ``T_i`` the valid tokens of text ``i``:

        s^{t→v}_ij = 1/|T_i| Σ_{l∈T_i} max_p c_{ij,lp}
        s^{v→t}_ij = 1/N     Σ_p       max_{l∈T_i} c_{ij,lp}

    Args:
        text_tokens: ``[Bt, L, d]`` L2-normalised.
        text_valid: bool ``[Bt, L]`` (no padding, special or masked tokens).
        image_tokens: ``[Bi, N, d]`` L2-normalised patch tokens (no CLS).
        chunk_elements: bound on the ``[chunk, Bi, L, N]`` similarity block (memory).

    Returns:
        ``(s_t2v, s_v2t)``, both ``[Bt, Bi]`` indexed (text, image).
    """
    bt, length, _ = text_tokens.shape
    bi, n, _ = image_tokens.shape
    valid = text_valid.bool()
    n_valid = valid.sum(1).clamp(min=1).float()
    chunk = max(1, chunk_elements // max(1, bi * length * n))
    t2v, v2t = [], []
    for start in range(0, bt, chunk):
        t = text_tokens[start : start + chunk].float()
        ok = valid[start : start + chunk]
        sim = torch.einsum("ild,jpd->ijlp", t, image_tokens.float())  # [c, Bi, L, N]
        best_patch = sim.max(dim=3).values  # [c, Bi, L]
        t2v.append((best_patch * ok[:, None, :]).sum(2) / n_valid[start : start + chunk, None])
        masked = sim.masked_fill(~ok[:, None, :, None], float("-inf"))
        best_token = masked.max(dim=2).values  # [c, Bi, N]; -inf only if no valid token
        v2t.append(torch.where(ok.any(1)[:, None, None], best_token, 0.0).mean(2))
    return torch.cat(t2v), torch.cat(v2t)


def gla_local_loss(
    text_tokens: Tensor, text_valid: Tensor, image_tokens: Tensor, logit_scale: Tensor
) -> Tensor:
    """FILIP-style token–patch alignment.

    ``L_loc = ½ [ CE(s · S^{t→v}, I) + CE(s · (S^{v→t})^T, I) ]`` (see :func:`filip_similarity`).
    """
    s_t2v, s_v2t = filip_similarity(text_tokens, text_valid, image_tokens)
    labels = torch.arange(s_t2v.shape[0], device=s_t2v.device)
    return 0.5 * (
        F.cross_entropy(logit_scale * s_t2v, labels)
        + F.cross_entropy(logit_scale * s_v2t.t(), labels)
    )


# ---------------------------------------------------------------- robust terms
def consistency_loss(online: Tensor, target: Tensor, center: Tensor | None = None) -> Tensor:
    """``mean_b [1 - cos(o_b - c, sg(t_b - c))]``: ``online`` ``[B, k]`` (gradient), ``target``
    ``[B, k]`` (stop-gradient), ``c`` ``[k]`` (stop-gradient; 0 if ``None``), see
    :func:`consistency_center`.

    With a consistency head (``heads.ConsistencyHead``): ``o = q(p(z̃))``, ``t = p(z)``.
    """
    online, target = online.float(), target.detach().float()
    if center is not None:
        center = center.detach().float()
        online, target = online - center, target - center
    return (1.0 - F.cosine_similarity(online, target, dim=-1)).mean()


def consistency_center(projected_clean: Tensor) -> Tensor:
    """``c = sg(mean_b p(z_b))`` over the whole clean batch ``[B, k] -> [k]``.

    Our addition to METHOD's formula (DINO-style centring): a constant projection gives
    ``cos = 1`` for any input, so the uncentred loss collapses to 0 within a few steps and stops
    teaching the encoders. Centred, a constant projection gives ``cos = 0`` (loss 1), and only
    sample-specific agreement between the views lowers the loss.
    """
    return projected_clean.detach().float().mean(dim=0)


def variance_covariance(projected: Tensor, gamma: float = 1.0) -> tuple[Tensor, Tensor]:
    """VICReg's regularisers of a batch of projections ``[n, k]`` (n >= 2):

    ``var = mean_j relu(gamma - sqrt(Var_j + 1e-4))`` keeps every dimension spread over the
    batch; ``cov = Σ_{i≠j} C_ij² / k`` (C the batch covariance) decorrelates the dimensions.
    Together they rule out the collapse of an invariance term onto a point or a line.
    """
    x = projected.float()
    std = torch.sqrt(x.var(dim=0) + 1e-4)
    variance = F.relu(gamma - std).mean()
    c = covariance(x)
    off_diagonal = c - torch.diag(torch.diagonal(c))
    return variance, off_diagonal.pow(2).sum() / x.shape[1]


COLLAPSE_STATISTICS: tuple[str, ...] = ("std", "eff_rank", "cos_high", "variance", "covariance")


def collapse_statistics(projected: Tensor, online: Tensor, target: Tensor) -> dict[str, float]:
    """How close a consistency term is to collapse (logged every step, no gradient):

    * ``std``: per-dimension std over the batch of the L2-normalised, batch-centred
      projections ``[n, k]`` (what the centred cosine compares), averaged over dimensions:
      ~1/sqrt(k) when they spread over the sphere, 0 when collapsed to a point;
    * ``eff_rank``: exp of the entropy of the normalised singular values of the centred
      projections (1 = a line, k = isotropic);
    * ``cos_high``: share of rows with ``|cos(online, target)| > 0.99`` (every row at ±1:
      the centred cosine has no gradient left).
    """
    with torch.no_grad():
        centred = projected.float() - projected.float().mean(dim=0, keepdim=True)
        x = F.normalize(centred, dim=-1)
        std = float(x.std(dim=0).mean()) if len(x) > 1 else 0.0
        singular = torch.linalg.svdvals(centred)
        p = singular / singular.sum().clamp_min(1e-12)
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
        cos = F.cosine_similarity(online.float(), target.float(), dim=-1)
        return {
            "std": std,
            "eff_rank": float(torch.exp(entropy)),
            "cos_high": float((cos.abs() > 0.99).float().mean()) if len(cos) else 0.0,
        }


def _domain_groups(features: Tensor, domain_ids: Tensor) -> list[Tensor]:
    """Feature blocks of the domains with at least two samples in the batch."""
    groups = []
    for dom in torch.unique(domain_ids).tolist():
        sel = domain_ids == dom
        if int(sel.sum()) >= 2:
            groups.append(features[sel].float())
    return groups


def covariance(x: Tensor) -> Tensor:
    """Unbiased covariance ``C = (X - x̄)^T (X - x̄) / (n - 1)``: ``[n, D] -> [D, D]``."""
    centred = x - x.mean(dim=0, keepdim=True)
    return centred.t() @ centred / (x.shape[0] - 1)


def coral_loss(features: Tensor, domain_ids: Tensor) -> Tensor:
    """Deep CORAL across the domains of a batch.

    ``L_coral = mean_{a<b} ||C_a - C_b||_F² / (4 D²)`` over domains with >= 2 samples;
    0 when fewer than two such domains are present.
    """
    groups = _domain_groups(features, domain_ids)
    if len(groups) < 2:
        return _zero_like_graph(features)
    dim = features.shape[1]
    covs = [covariance(g) for g in groups]
    terms = [(a - b).pow(2).sum() / (4.0 * dim * dim) for a, b in itertools.combinations(covs, 2)]
    return torch.stack(terms).mean()


def mmd_loss(
    features: Tensor, domain_ids: Tensor, scales: tuple[float, ...] = (0.5, 1.0, 2.0)
) -> Tensor:
    """Multi-kernel Gaussian MMD² (biased) across the domains of a batch.

    ``k(x, y) = mean_s exp(-||x - y||² / (2 s σ²))``, ``σ²`` = median pairwise squared distance
    of the batch (detached); ``MMD²(a, b) = E k(a, a') + E k(b, b') - 2 E k(a, b)``;
    ``L_mmd = mean_{a<b} MMD²(a, b)``; 0 with fewer than two domains of >= 2 samples.
    """
    groups = _domain_groups(features, domain_ids)
    if len(groups) < 2:
        return _zero_like_graph(features)
    everything = torch.cat(groups)
    with torch.no_grad():
        d2 = torch.cdist(everything, everything).pow(2)
        sigma2 = d2[d2 > 0].median() if bool((d2 > 0).any()) else d2.new_tensor(1.0)

    def kernel(x: Tensor, y: Tensor) -> Tensor:
        dist = torch.cdist(x, y).pow(2)
        return torch.stack([torch.exp(-dist / (2.0 * s * sigma2)) for s in scales]).mean(0)

    terms = [
        kernel(a, a).mean() + kernel(b, b).mean() - 2.0 * kernel(a, b).mean()
        for a, b in itertools.combinations(groups, 2)
    ]
    return torch.stack(terms).mean()


def ramp(progress: float, ramp_fraction: float) -> float:
    """Linear warm-in of a loss weight: ``min(1, progress / ramp_fraction)`` (1 if fraction 0)."""
    if ramp_fraction <= 0.0:
        return 1.0
    return float(min(1.0, max(0.0, progress) / ramp_fraction))
