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
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from robust_mmr_pipeline.engine.data import ImageCache
from robust_mmr_pipeline.model import MMRModel
from robust_mmr_pipeline.tasks.data import ImagePerturbation, TextPerturbation
from robust_mmr_pipeline.tasks.metrics import DEFAULT_KS, rank_metrics, ranks_from_order


def itm_log_odds(logits: Tensor) -> Tensor:
    """``log P(match) - log P(no match)`` ``[B]`` from ITM logits ``[B, 2]``.

    Monotone in the ITM probability (its sigmoid) but never saturates to 1.0 in float32, so
    confident candidates stay distinguishable when ranked.
    """
    logits = logits.float()
    return logits[:, 1] - logits[:, 0]


def backbone_of(model: nn.Module) -> MMRModel:
    """The MMRModel of ``model`` (a TaskModel's ``backbone`` or the model itself)."""
    backbone = getattr(model, "backbone", model)
    if not isinstance(backbone, MMRModel):
        raise TypeError(f"expected an MMRModel or a TaskModel, got {type(model).__name__}")
    return backbone


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


# --------------------------------------------------------------------------- inputs


@dataclass
class RetrievalInputs:
    """A retrieval set: images ``[N_i, C, H, W]`` (uint8 0..255 or float [0, 1]), tokenised
    texts ``[N_t, L]`` and ``text_to_image`` long ``[N_t]`` (index of each text's image).

    ``image_perturbation`` is applied on the fly to every image batch, sample ``i`` seeded by
    its image index (text perturbations are applied before tokenisation, by
    :meth:`from_pairs`).
    """

    images: Tensor
    input_ids: Tensor
    attention_mask: Tensor
    text_to_image: Tensor
    image_ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    image_perturbation: ImagePerturbation | None = None
    image_modalities: list[str | None] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be [N, C, H, W], got {tuple(self.images.shape)}")
        if self.input_ids.shape != self.attention_mask.shape or self.input_ids.ndim != 2:
            raise ValueError("input_ids and attention_mask must both be [N_t, L]")
        self.text_to_image = self.text_to_image.long()
        if self.text_to_image.shape != (self.input_ids.shape[0],):
            raise ValueError("text_to_image needs one image index per text")
        if len(self.text_to_image) and (
            int(self.text_to_image.min()) < 0 or int(self.text_to_image.max()) >= self.num_images
        ):
            raise ValueError("text_to_image holds an index outside the images")
        described = torch.zeros(self.num_images, dtype=torch.bool)
        described[self.text_to_image] = True
        if not bool(described.all()):
            raise ValueError("every image needs at least one text (else it has no positive)")

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_texts(self) -> int:
        return int(self.input_ids.shape[0])

    def pixel_values(self, index: Tensor) -> Tensor:
        """Float ``[b, C, H, W]`` in [0, 1] for image indices ``index`` ``[b]`` (perturbed
        when an image perturbation is set)."""
        images = self.images[index]
        images = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        if self.image_perturbation is not None:
            modalities = None
            if self.image_modalities is not None:
                modalities = [self.image_modalities[int(i)] for i in index]
            images = self.image_perturbation.apply(images, index, modalities)
        return images

    def positives_for_images(self, image_index: Tensor) -> Tensor:
        """bool ``[Q, N_t]``: the texts of each query image."""
        return self.text_to_image[None, :] == image_index[:, None]

    def positives_for_texts(self, text_index: Tensor) -> Tensor:
        """bool ``[Q, N_i]``: the image of each query text."""
        images = torch.arange(self.num_images)
        return images[None, :] == self.text_to_image[text_index][:, None]

    @classmethod
    def from_pairs(
        cls,
        pairs: pd.DataFrame,
        cache: ImageCache,
        tokenizer: Any,
        *,
        max_length: int = 64,
        text_column: str = "text",
        image_perturbation: ImagePerturbation | None = None,
        text_perturbation: TextPerturbation | None = None,
    ) -> RetrievalInputs:
        """Build from a pairs frame (``image_id``, ``text``; optional ``modality``).

        Images are the unique image ids in first-seen order, read from ``cache`` (uint8);
        texts are tokenised like :class:`~robust_mmr_pipeline.engine.PairCollator` (padding
        to ``max_length``), after ``text_perturbation`` (text ``j`` seeded by ``j``).
        """
        missing = [c for c in ("image_id", text_column) if c not in pairs.columns]
        if missing:
            raise ValueError(f"pairs lack column(s) {missing}")
        pair_images = pairs["image_id"].astype(str).tolist()
        texts = pairs[text_column].fillna("").astype(str).tolist()
        first_seen: dict[str, int] = {}
        text_to_image = [first_seen.setdefault(i, len(first_seen)) for i in pair_images]
        image_ids = list(first_seen)
        images = torch.stack([cache.tensor(i) for i in image_ids]) if image_ids else None
        if images is None:
            raise ValueError("pairs is empty")
        modalities = None
        if "modality" in pairs.columns:
            by_image = dict(zip(pair_images, pairs["modality"].tolist(), strict=True))
            modalities = [m if isinstance(m, str) else None for m in map(by_image.get, image_ids)]
        if text_perturbation is not None:
            texts = text_perturbation.apply(texts, list(range(len(texts))))
        encoded = tokenizer(
            texts,
            max_length=max_length,
            padding="max_length",
            truncation=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        return cls(
            images=images.clone(),
            input_ids=encoded["input_ids"].long(),
            attention_mask=encoded["attention_mask"].long(),
            text_to_image=torch.tensor(text_to_image, dtype=torch.long),
            image_ids=image_ids,
            texts=texts,
            image_perturbation=image_perturbation,
            image_modalities=modalities,
        )


# --------------------------------------------------------------------------- encoding


@dataclass
class RetrievalEncoding:
    """Per-item encodings of a :class:`RetrievalInputs` (on the model's device).

    ``image_embeddings`` ``[N_i, d_c]`` / ``text_embeddings`` ``[N_t, d_c]`` L2-normalised;
    ``image_streams`` ``[N_i, 1+K, d]`` / ``text_streams`` ``[N_t, L, d]`` the fusion inputs
    (None when not kept); ``seconds`` the wall time of encoding.
    """

    image_embeddings: Tensor
    text_embeddings: Tensor
    image_streams: Tensor | None
    text_streams: Tensor | None
    seconds: float


def _chunks(n: int, size: int) -> list[Tensor]:
    return [torch.arange(s, min(s + size, n)) for s in range(0, n, size)]


@torch.no_grad()
def encode_inputs(
    model: nn.Module,
    inputs: RetrievalInputs,
    *,
    batch_size: int = 128,
    keep_streams: bool = True,
    like: RetrievalEncoding | None = None,
    perturbed: str | None = None,
) -> RetrievalEncoding:
    """Encode every image and text once (eval mode; the model's mode is restored).

    With ``like`` (the clean set's encoding, same items, streams kept) only the ``perturbed``
    modality (``"image"`` / ``"text"``) is encoded and the other reused: the same numbers, as
    encoding is per item."""
    backbone = backbone_of(model)
    device = _device(backbone)
    was_training = backbone.training
    backbone.eval()
    start = time.perf_counter()
    try:
        image_emb, image_streams, text_emb, text_streams = [], [], [], []
        reuse = like is not None and perturbed in ("image", "text")
        if reuse and perturbed == "text":
            assert like is not None and like.image_streams is not None
            image_emb, image_streams = [like.image_embeddings], [like.image_streams]
        if reuse and perturbed == "image":
            assert like is not None and like.text_streams is not None
            text_emb, text_streams = [like.text_embeddings], [like.text_streams]
        for index in _chunks(inputs.num_images, batch_size) if not image_emb else []:
            v0, emb = backbone.embed_images(inputs.pixel_values(index).to(device))
            image_emb.append(emb.float())
            if keep_streams:
                image_streams.append(v0)
        for index in _chunks(inputs.num_texts, batch_size) if not text_emb else []:
            t0, emb = backbone.embed_texts(
                inputs.input_ids[index].to(device),
                inputs.attention_mask[index].to(device),
            )
            text_emb.append(emb.float())
            if keep_streams:
                text_streams.append(t0)
    finally:
        backbone.train(was_training)
    return RetrievalEncoding(
        image_embeddings=torch.cat(image_emb),
        text_embeddings=torch.cat(text_emb),
        image_streams=torch.cat(image_streams) if keep_streams else None,
        text_streams=torch.cat(text_streams) if keep_streams else None,
        seconds=time.perf_counter() - start,
    )


class ITMScorer:
    """Cross-encoder scores of arbitrary (image, text) index pairs, batched.

    ``scorer(image_index [P], text_index [P]) -> [P]`` float32 ITM log-odds on the CPU.
    ``pairs_scored`` counts the pairs run through the fusion layers.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: RetrievalInputs,
        encoding: RetrievalEncoding | None = None,
        *,
        batch_size: int = 256,
        reuse_unimodal: bool = True,
    ) -> None:
        self.backbone = backbone_of(model)
        if self.backbone.itm_head is None:
            raise RuntimeError("ITM scoring needs a backbone with an ITM head")
        self.inputs = inputs
        self.batch_size = int(batch_size)
        self.reuse_unimodal = reuse_unimodal
        self.device = _device(self.backbone)
        if reuse_unimodal and (encoding is None or encoding.image_streams is None):
            encoding = encode_inputs(model, inputs, batch_size=batch_size, keep_streams=True)
        self.encoding = encoding
        self.pairs_scored = 0

    @torch.no_grad()
    def __call__(self, image_index: Tensor, text_index: Tensor) -> Tensor:
        if image_index.shape != text_index.shape or image_index.ndim != 1:
            raise ValueError("image_index and text_index must be [P] each")
        backbone = self.backbone
        was_training = backbone.training
        backbone.eval()
        out = []
        try:
            for chunk in _chunks(len(image_index), self.batch_size):
                images, texts = image_index[chunk].cpu(), text_index[chunk].cpu()
                mask = self.inputs.attention_mask[texts]
                length = max(int(mask.sum(dim=1).max()), 1)  # padding beyond is masked anyway
                mask = mask[:, :length].to(self.device)
                if self.reuse_unimodal:
                    assert self.encoding is not None and self.encoding.image_streams is not None
                    assert self.encoding.text_streams is not None
                    v0 = self.encoding.image_streams[images.to(self.encoding.image_streams.device)]
                    t0 = self.encoding.text_streams[texts.to(self.encoding.text_streams.device)]
                    fused = backbone.fuse(v0.to(self.device), t0[:, :length].to(self.device), mask)
                else:
                    ids = self.inputs.input_ids[texts][:, :length].to(self.device)
                    pixels = self.inputs.pixel_values(images).to(self.device)
                    fused = backbone.encode(pixels, ids, mask).fused
                out.append(itm_log_odds(backbone.itm_logits(fused)).cpu())
                self.pairs_scored += len(chunk)
        finally:
            backbone.train(was_training)
        return torch.cat(out) if out else torch.zeros(0)


# --------------------------------------------------------------------------- results


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
        for rows in _chunks(len(queries), _CHUNK)
    ]
    return torch.cat(tops) if tops else torch.zeros(0, k, dtype=torch.long)


def _reranked_ranks(
    query_emb: Tensor, candidate_emb: Tensor, queries: Tensor, positives: Tensor, scores: Tensor
) -> Tensor:
    """Ranks ``[Q]`` after re-ranking each query's top ``k`` (``scores`` ``[Q, k]``)."""
    ranks = []
    for rows in _chunks(len(queries), _CHUNK):
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
