"""Image–text retrieval: contrastive top-k, ITM re-ranking, and the full cross-encoder.

Ground truth: pair ``j`` of the set is (image ``text_to_image[j]``, text ``j``); images are the
unique image ids (several texts may describe one image). Image -> text: the positives of image
``i`` are its texts; text -> image: the positive of text ``j`` is its image. The rank of a query
is the 1-based position of its first positive in the final ranked list.

Methods (all return a :class:`RetrievalResult`)
-----------------------------------------------
:func:`contrastive_search`
    ``S = E_q E_c^T`` of the L2-normalised unimodal embeddings (each item encoded once; the
    ``[Q, C]`` similarity is one matmul); candidates ordered by ``S``.
:func:`two_stage_search`
    Contrastive order, then the top ``k`` candidates of each query re-scored by the ITM
    cross-encoder and re-ordered by that score; candidates outside the top ``k`` keep their
    contrastive order after the re-ranked ``k`` (so every item has a rank and the mean rank
    stays defined). At most ``Q · k`` cross-encoder pairs per direction instead of ``Q · C``
    (a pair proposed by both directions is scored once).
:func:`cross_encoder_search`
    M3AE's protocol: the ITM score of every (query, candidate) pair, batched; for small sets.

The cross-encoder score is the ITM log-odds ``logit_match - logit_no_match`` (monotone in
``MMRModel.itm_score`` but without float32 saturation at probability 1). With
``reuse_unimodal`` (default) the unimodal encoders and the fusion input projections run once
per item and only the co-attention layers run per pair (``MMRModel.embed_images`` /
``embed_texts`` once, ``MMRModel.fuse`` per pair; identical scores, memory
``O((N_i (1+K) + N_t L) d)``); ``reuse_unimodal=False`` runs ``MMRModel.encode`` on every
pair instead (no stream cache). Ties are broken by candidate
index (contrastive stage) or contrastive order (re-ranking), so results are deterministic.
Runs on the model's device, in one process.

The set (:class:`RetrievalInputs`) is built in retrieval_inputs.py; encoding and ITM scoring
(:func:`encode_inputs`, :class:`ITMScorer`) live in retrieval_encoding.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from robust_mmr_pipeline.tasks.metrics import DEFAULT_KS, rank_metrics, ranks_from_order
from robust_mmr_pipeline.tasks.retrieval_encoding import (
    ITMScorer,
    RetrievalEncoding,
    backbone_of,
    chunks,
    encode_inputs,
    itm_log_odds,
)
from robust_mmr_pipeline.tasks.retrieval_inputs import RetrievalInputs

__all__ = [
    "ITMScorer",
    "RetrievalEncoding",
    "RetrievalInputs",
    "RetrievalResult",
    "backbone_of",
    "contrastive_search",
    "cross_encoder_search",
    "encode_inputs",
    "itm_log_odds",
    "rerank_order",
    "two_stage_search",
]


@dataclass
class RetrievalResult:
    """Ranks of the queries of both directions (1-based, long) and what it cost.

    ``i2t_ranks`` ``[Q_i]`` for ``image_queries``; ``t2i_ranks`` ``[Q_t]`` for
    ``text_queries``; ``itm_pairs`` cross-encoder pairs scored; ``seconds`` wall times
    (``encode``, ``search``, ``total``).
    """

    method: str
    i2t_ranks: Tensor
    t2i_ranks: Tensor
    image_queries: Tensor
    text_queries: Tensor
    k: int | None = None
    itm_pairs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def metrics(self, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
        """``i2t_r@k``, ``i2t_mean_rank``, ``i2t_median_rank`` (same for ``t2i``) and
        ``rsum`` (sum of all R@k, in [0, 2 len(ks)]) for the directions that have queries."""
        out: dict[str, float] = {}
        rsum = 0.0
        for name, ranks in (("i2t", self.i2t_ranks), ("t2i", self.t2i_ranks)):
            if len(ranks) == 0:
                continue
            values = rank_metrics(ranks, ks)
            rsum += sum(values[f"r@{k}"] for k in ks)
            out.update({f"{name}_{key}": value for key, value in values.items()})
        out["rsum"] = rsum
        return out


def _queries(given: Tensor | Sequence[int] | None, n: int) -> Tensor:
    if given is None:
        return torch.arange(n)
    index = torch.as_tensor(given, dtype=torch.long).reshape(-1)
    if len(index) and (int(index.min()) < 0 or int(index.max()) >= n):
        raise ValueError(f"query indices must be in [0, {n})")
    return index


def _encoding(
    model: nn.Module,
    inputs: RetrievalInputs,
    encoding: RetrievalEncoding | None,
    batch_size: int,
    keep_streams: bool,
) -> RetrievalEncoding:
    if encoding is not None and (encoding.image_streams is not None or not keep_streams):
        return encoding
    return encode_inputs(model, inputs, batch_size=batch_size, keep_streams=keep_streams)


def _contrastive_order(query_emb: Tensor, candidate_emb: Tensor) -> Tensor:
    """Candidates by decreasing cosine, ties by index: long ``[Q, C]`` (on the CPU)."""
    sim = (query_emb @ candidate_emb.t()).float().cpu()
    return torch.sort(sim, dim=1, descending=True, stable=True).indices


@torch.no_grad()
def contrastive_search(
    model: nn.Module,
    inputs: RetrievalInputs,
    *,
    batch_size: int = 128,
    image_queries: Tensor | Sequence[int] | None = None,
    text_queries: Tensor | Sequence[int] | None = None,
    encoding: RetrievalEncoding | None = None,
) -> RetrievalResult:
    """Stage one alone: rank by the cosine of the contrastive embeddings."""
    start = time.perf_counter()
    enc = _encoding(model, inputs, encoding, batch_size, keep_streams=False)
    encoded = time.perf_counter()
    iq = _queries(image_queries, inputs.num_images)
    tq = _queries(text_queries, inputs.num_texts)
    image_emb, text_emb = enc.image_embeddings, enc.text_embeddings
    i2t_order = _contrastive_order(image_emb[iq.to(image_emb.device)], text_emb)
    t2i_order = _contrastive_order(text_emb[tq.to(text_emb.device)], image_emb)
    i2t = ranks_from_order(i2t_order, inputs.positives_for_images(iq))
    t2i = ranks_from_order(t2i_order, inputs.positives_for_texts(tq))
    end = time.perf_counter()
    seconds = {"encode": encoded - start, "search": end - encoded, "total": end - start}
    return RetrievalResult("contrastive", i2t, t2i, iq, tq, None, 0, seconds)


def rerank_order(order: Tensor, scores: Tensor) -> Tensor:
    """Re-rank the first ``k`` columns of ``order`` ``[Q, C]`` by ``scores`` ``[Q, k]``.

    The top ``k`` are sorted by decreasing score (ties keep their contrastive order); the
    other candidates follow in their contrastive order. Returns long ``[Q, C]``.
    """
    k = scores.shape[1]
    inner = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return torch.cat([order[:, :k].gather(1, inner), order[:, k:]], dim=1)


_CHUNK = 1024  # queries sorted at once: bounds the [chunk, C] similarity / order tensors


def _top_candidates(query_emb: Tensor, candidate_emb: Tensor, queries: Tensor, k: int) -> Tensor:
    """The first ``k`` candidates of each query in contrastive order: long ``[Q, k]``."""
    tops = [
        _contrastive_order(query_emb[queries[rows].to(query_emb.device)], candidate_emb)[:, :k]
        for rows in chunks(len(queries), _CHUNK)
    ]
    return torch.cat(tops) if tops else torch.zeros(0, k, dtype=torch.long)


def _reranked_ranks(
    query_emb: Tensor, candidate_emb: Tensor, queries: Tensor, positives: Tensor, scores: Tensor
) -> Tensor:
    """Ranks ``[Q]`` after re-ranking each query's top ``k`` (``scores`` ``[Q, k]``)."""
    ranks = []
    for rows in chunks(len(queries), _CHUNK):
        order = _contrastive_order(query_emb[queries[rows].to(query_emb.device)], candidate_emb)
        ranks.append(ranks_from_order(rerank_order(order, scores[rows]), positives[rows]))
    return torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def two_stage_search(
    model: nn.Module,
    inputs: RetrievalInputs,
    *,
    k: int = 16,
    batch_size: int = 256,
    image_queries: Tensor | Sequence[int] | None = None,
    text_queries: Tensor | Sequence[int] | None = None,
    reuse_unimodal: bool = True,
    encoding: RetrievalEncoding | None = None,
) -> RetrievalResult:
    """Contrastive top-``k`` then ITM re-ranking (see the module docstring).

    ``k`` is clipped to the number of candidates; ``k`` = all candidates reproduces
    :func:`cross_encoder_search`. Empty query tensors skip a direction. A pair proposed by
    both directions (image i in text j's top k and text j in image i's top k) is scored once:
    ``itm_pairs`` <= ``Q_i k + Q_t k``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    start = time.perf_counter()
    enc = _encoding(model, inputs, encoding, batch_size, keep_streams=reuse_unimodal)
    scorer = ITMScorer(model, inputs, enc, batch_size=batch_size, reuse_unimodal=reuse_unimodal)
    encoded = time.perf_counter()
    iq = _queries(image_queries, inputs.num_images)
    tq = _queries(text_queries, inputs.num_texts)
    image_emb, text_emb = enc.image_embeddings, enc.text_embeddings
    k_texts, k_images = min(k, inputs.num_texts), min(k, inputs.num_images)
    i2t_top = _top_candidates(image_emb, text_emb, iq, k_texts)  # [Q_i, k] text indices
    t2i_top = _top_candidates(text_emb, image_emb, tq, k_images)  # [Q_t, k] image indices
    pair_images = torch.cat([iq.repeat_interleave(k_texts), t2i_top.reshape(-1)])
    pair_texts = torch.cat([i2t_top.reshape(-1), tq.repeat_interleave(k_images)])
    unique, inverse = torch.unique(pair_images * inputs.num_texts + pair_texts, return_inverse=True)
    scores = scorer(unique // inputs.num_texts, unique % inputs.num_texts)[inverse]
    split = len(iq) * k_texts
    i2t_scores = scores[:split].reshape(len(iq), k_texts)
    t2i_scores = scores[split:].reshape(len(tq), k_images)
    i2t = _reranked_ranks(image_emb, text_emb, iq, inputs.positives_for_images(iq), i2t_scores)
    t2i = _reranked_ranks(text_emb, image_emb, tq, inputs.positives_for_texts(tq), t2i_scores)
    end = time.perf_counter()
    seconds = {"encode": encoded - start, "search": end - encoded, "total": end - start}
    return RetrievalResult("two_stage", i2t, t2i, iq, tq, k, scorer.pairs_scored, seconds)


def _score_matrix(scorer: ITMScorer, images: Tensor, texts: Tensor) -> Tensor:
    """ITM scores ``[len(images), len(texts)]`` of every (image, text) combination."""
    image_pairs = images.repeat_interleave(len(texts))
    text_pairs = texts.repeat(len(images))
    return scorer(image_pairs, text_pairs).reshape(len(images), len(texts))


@torch.no_grad()
def cross_encoder_search(
    model: nn.Module,
    inputs: RetrievalInputs,
    *,
    batch_size: int = 256,
    image_queries: Tensor | Sequence[int] | None = None,
    text_queries: Tensor | Sequence[int] | None = None,
    reuse_unimodal: bool = True,
    encoding: RetrievalEncoding | None = None,
) -> RetrievalResult:
    """ITM score of every (query, candidate) pair; ranks by score, ties by candidate index.

    The ``[N_i, N_t]`` matrix is computed once when every image is a query and reused for
    the text queries. Cost: ``Q_i · N_t (+ N_i · Q_t)`` cross-encoder pairs.
    """
    start = time.perf_counter()
    enc = _encoding(model, inputs, encoding, batch_size, keep_streams=reuse_unimodal)
    scorer = ITMScorer(model, inputs, enc, batch_size=batch_size, reuse_unimodal=reuse_unimodal)
    encoded = time.perf_counter()
    iq = _queries(image_queries, inputs.num_images)
    tq = _queries(text_queries, inputs.num_texts)
    all_texts = torch.arange(inputs.num_texts)
    all_images = torch.arange(inputs.num_images)
    i2t_scores = _score_matrix(scorer, iq, all_texts)  # [Q_i, N_t]
    order = torch.sort(i2t_scores, dim=1, descending=True, stable=True).indices
    i2t = ranks_from_order(order, inputs.positives_for_images(iq))
    if len(tq) == 0:
        t2i_scores = torch.zeros(0, inputs.num_images)
    elif torch.equal(iq, all_images):
        t2i_scores = i2t_scores[:, tq].t()
    else:
        t2i_scores = _score_matrix(scorer, all_images, tq).t()  # [Q_t, N_i]
    order = torch.sort(t2i_scores, dim=1, descending=True, stable=True).indices
    t2i = (
        ranks_from_order(order, inputs.positives_for_texts(tq))
        if len(tq)
        else torch.zeros(0, dtype=torch.long)
    )
    end = time.perf_counter()
    seconds = {"encode": encoded - start, "search": end - encoded, "total": end - start}
    return RetrievalResult("cross_encoder", i2t, t2i, iq, tq, None, scorer.pairs_scored, seconds)
