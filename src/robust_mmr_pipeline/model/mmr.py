"""MMRModel: encoders + co-attention fusion + heads, and the pre-training step.

Pass structure of one joint step (``config.m3ae_style = False``):

1. **Clean joint pass** (always). Image patches randomly masked (75 %, dropped before the ViT)
   and text tokens masked (15 %, 80/10/10) together; ONE encoder + fusion pass gives
   MIM (decoder on the image stream after fusion layer ``read_layer``), MLM (final text stream),
   GLA global/local (the unimodal encoder outputs of the same pass, FLIP-style contrastive
   learning on masked inputs), the ITM positives (the fused features of the same pass) and the
   clean fused feature ``z`` for the robust terms and CORAL / MMD.
2. **ITM negatives** (if ITM). Only the co-attention layers run again, on the embedded streams
   of pass 1 with each text paired to another image (a derangement, or a hard negative drawn
   ∝ softmax of the GLA similarity when GLA global is on): no encoder pass. The ITM batch is
   ``B`` positives + ``B`` negatives (50 % swapped, as in M3AE).
3. **Degraded pass** (if perturbation-aware masking, domain consistency or modality
   resilience). One view for the batch (views.py): perturbed images and / or reporting-style
   shifted texts (string level, re-tokenised by the collator), some samples with a modality
   dropped, masked like pass 1 (perturbation-aware on perturbed images). With
   ``robust.degraded_reconstruction`` it adds denoising terms ``mim_degraded`` /
   ``mlm_degraded`` (targets = the CLEAN patches / tokens; MLM only where the text is clean).
   It gives ``z̃`` for the non-dropped samples, ``L_dc = 1 - cos(q(p(z̃)) - c, sg(p(z) - c))``,
   and ``z_drop`` for the dropped ones, ``L_mr`` the same with the resilience head, where ``z``
   is the fused feature of an UNMASKED clean pass under no_grad (``robust.consistency_target``),
   ``p`` / ``q`` the term's own projector / predictor (heads.ConsistencyHead, so the term
   constrains a projection, not the fused feature the task heads read) and
   ``c = sg(mean_b p(z_b))`` the clean-batch centre (``robust.consistency_center``).
   With neither perturbation-aware masking nor DC, only the dropped samples are run.

``m3ae_style = True`` computes MLM, MIM and ITM with M3AE's THREE passes instead: MLM with the
full clean image, MIM with the clean text, ITM on clean pairs with 50 % swapped full images.

Total loss (every term also logged on its own, per pass):
``L = Σ_clean w_k L_k + α·r(t)·(w_mim L_mim_degraded + w_mlm L_mlm_degraded)
+ Σ_robust λ_k·r(t)·L_k`` with ``α = robust.degraded_weight`` and
``r(t) = min(1, progress / ramp_fraction)``; the clean terms keep MMR's full weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust_mmr_pipeline.engine.registry import register_model_class
from robust_mmr_pipeline.model import objectives as O
from robust_mmr_pipeline.model.config import ROBUST_OBJECTIVES, ModelConfig
from robust_mmr_pipeline.model.flops import training_flops_per_sample
from robust_mmr_pipeline.model.fusion import CoAttentionFusion, FusionOutput, fused_feature
from robust_mmr_pipeline.model.heads import (
    ConsistencyHead,
    ITMHead,
    MIMDecoder,
    MLMHead,
    Pooler,
    ProjectionHead,
    summarize_tokens,
)
from robust_mmr_pipeline.model.masking import (
    IGNORE_INDEX,
    PatchMask,
    TokenMask,
    eligible_tokens,
    patch_deviation,
    perturbation_aware_patch_mask,
    random_patch_mask,
    random_token_mask,
)
from robust_mmr_pipeline.model.text import TextEncoder
from robust_mmr_pipeline.model.views import build_degraded_batch, check_perturbations
from robust_mmr_pipeline.model.vision import VisionEncoder


@dataclass
class PretrainOutput:
    """``loss`` scalar (weighted total), ``losses`` detached per objective, ``metrics`` floats,
    ``diagnostics`` detached scalars the trainer logs and plots like the losses (the same keys
    every step; not part of the total): the consistency terms' collapse statistics."""

    loss: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class FusedOutput:
    """Unmasked multi-modal representation for fine-tuning (``d`` = fusion width)."""

    image_tokens: Tensor  # [B, 1+N, d]
    text_tokens: Tensor  # [B, L, d]
    image_pooled: Tensor  # [B, d]
    text_pooled: Tensor  # [B, d]
    fused: Tensor  # [B, 2d] = [text_pooled ; image_pooled]


@dataclass
class _Pass:
    """Everything one encoder + fusion pass produces."""

    image_unimodal: Tensor  # [B, 1+K, D_v]
    text_unimodal: Tensor  # [B, L, D_t]
    image_embedded: Tensor  # [B, 1+K, d] fusion input v_0
    text_embedded: Tensor  # [B, L, d] fusion input t_0
    fusion: FusionOutput
    image_pooled: Tensor  # [B, d]
    text_pooled: Tensor  # [B, d]
    fused: Tensor  # [B, 2d]


def _init_new(module: nn.Module) -> None:
    """Init of the non-pretrained parts (BERT / MAE convention)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.trunc_normal_(module.weight, std=0.02)


# Registered so that a checkpoint rebuilds its own model (engine.load_model's allow-list).
@register_model_class
class MMRModel(nn.Module):
    """Multi-modal masked reconstruction model (M3AE family) with MPMA / Robust-MMR options.

    Batch keys of :meth:`forward`: ``pixel_values`` float ``[B, C, H, W]`` in [0, 1],
    ``input_ids`` / ``attention_mask`` / ``special_tokens_mask`` long ``[B, L]``, optional
    ``domain_ids`` long ``[B]``. Randomness comes only from torch's global RNG.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        check_perturbations(config)
        self._config = config
        obj = config.objectives
        # Encoders first: shared parameters (tied MLM weight) are then named as embeddings.
        self.vision = VisionEncoder(config.vision)
        self.text = TextEncoder(config.text)
        d = config.fusion.hidden_size
        self.fusion = CoAttentionFusion(
            self.text.width, self.vision.width, config.fusion, config.memory
        )
        self.text_pooler = Pooler(d, config.fusion.pooling)
        self.image_pooler = Pooler(d, config.fusion.pooling)
        # Heads exist only for enabled objectives: no unused parameters under DDP.
        self.mim_decoder = (
            MIMDecoder(d, config.vision.num_patches, config.vision.patch_dim, config.decoder)
            if obj.mim
            else None
        )
        self.mlm_head = MLMHead(d, self.text.word_embeddings) if obj.mlm else None
        self.itm_head = ITMHead(2 * d) if obj.itm else None
        self.has_contrastive = obj.gla_global or obj.gla_local
        if self.has_contrastive:
            self.image_contrastive = ProjectionHead(self.vision.width, obj.contrastive_dim)
            self.text_contrastive = ProjectionHead(self.text.width, obj.contrastive_dim)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / obj.temperature_init)))
        robust = config.robust
        head_shape = (2 * d, robust.predictor_hidden, robust.projection_dim)
        self.dc_head = ConsistencyHead(*head_shape) if obj.domain_consistency else None
        self.mr_head = ConsistencyHead(*head_shape) if obj.modality_resilience else None

        for module in (self.fusion, self.text_pooler, self.image_pooler):
            module.apply(_init_new)
        for name in ("mim_decoder", "itm_head", "image_contrastive", "text_contrastive"):
            if getattr(self, name, None) is not None:
                getattr(self, name).apply(_init_new)
        for module in (self.dc_head, self.mr_head):
            if module is not None:
                module.apply(_init_new)
        if self.mlm_head is not None:  # not the tied decoder weight: it is the embedding
            self.mlm_head.dense.apply(_init_new)
            nn.init.zeros_(self.mlm_head.decoder.bias)

    # ------------------------------------------------------------------ public
    @property
    def config(self) -> ModelConfig:
        return self._config

    def forward(self, batch: dict[str, Tensor], progress: float = 1.0) -> PretrainOutput:
        """One pre-training step's losses; ``progress`` in [0, 1] drives the loss ramps."""
        if self._config.m3ae_style:
            return self.forward_m3ae_style(batch, progress)
        return self.forward_joint(batch, progress)

    def encode(
        self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor
    ) -> FusedOutput:
        """Unmasked encoding for fine-tuning: full image, full text, all fusion layers."""
        out = self._run(pixel_values, input_ids, attention_mask)
        return FusedOutput(
            out.fusion.image, out.fusion.text, out.image_pooled, out.text_pooled, out.fused
        )

    def contrastive_embeddings(
        self,
        pixel_values: Tensor | None = None,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
    ) -> tuple[Tensor | None, Tensor | None]:
        """L2-normalised unimodal CLS embeddings for retrieval (no fusion): ``[B, d_c]`` each.

        Images and texts can be embedded separately (pass ``None`` for the other). Uses the GLA
        projections when GLA was trained, else the fusion input projections (``[B, d]``).
        """
        image = text = None
        if pixel_values is not None:
            image = self._image_embedding(self.vision(pixel_values))
        if input_ids is not None:
            if attention_mask is None:
                raise ValueError("contrastive_embeddings: input_ids need an attention_mask")
            text = self._text_embedding(self.text(input_ids, attention_mask), attention_mask)
        return image, text

    # Split encoding (retrieval): unimodal once per item, fusion per (image, text) pair. Ranking
    # N images against N texts needs N^2 fused pairs but only N encodings of each modality;
    # ``fuse(embed_images(x)[0], embed_texts(ids, m)[0], m)`` equals ``encode(x, ids, m).fused``.
    def embed_images(self, pixel_values: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, C, H, W]`` -> (fusion input ``v_0`` ``[B, 1+K, d]``, embedding ``[B, d_c]``)."""
        tokens = self.vision(pixel_values)
        return self.fusion.embed_image(tokens), self._image_embedding(tokens)

    def embed_texts(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, L]`` ids + mask -> (fusion input ``t_0`` ``[B, L, d]``, embedding ``[B, d_c]``)."""
        tokens = self.text(input_ids, attention_mask)
        return self.fusion.embed_text(tokens), self._text_embedding(tokens, attention_mask)

    def fuse(self, image_embedded: Tensor, text_embedded: Tensor, attention_mask: Tensor) -> Tensor:
        """Fusion layers + poolers on embedded streams (row i with row i): fused ``[B, 2d]``."""
        out = self.fusion(image_embedded, text_embedded, attention_mask)
        return fused_feature(
            self.text_pooler(out.text, attention_mask), self.image_pooler(out.image)
        )

    def itm_logits(self, fused: Tensor) -> Tensor:
        """ITM head on fused features: ``[B, 2d] -> [B, 2]`` (class 1 = matched)."""
        if self.itm_head is None:
            raise RuntimeError("ITM scoring needs a model trained with objectives.itm enabled")
        return self.itm_head(fused)

    def itm_score(self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """``P(match)`` ``[B]`` for aligned pairs (row i image with row i text), for re-ranking."""
        fused = self.encode(pixel_values, input_ids, attention_mask).fused
        return self.itm_logits(fused).float().softmax(dim=-1)[:, 1]

    # A task model without retrieval prunes the GLA projections (tasks/model.py): its split
    # encoding then embeds with the fusion input projections, as a model trained without GLA.
    def _image_embedding(self, tokens: Tensor) -> Tensor:
        proj = getattr(self, "image_contrastive", None)
        proj = self.fusion.image_proj if proj is None else proj
        summary = summarize_tokens(tokens, None, self._config.fusion.pooling)
        return F.normalize(proj(summary), dim=-1)

    def _text_embedding(self, tokens: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        proj = getattr(self, "text_contrastive", None)
        proj = self.fusion.text_proj if proj is None else proj
        summary = summarize_tokens(tokens, attention_mask, self._config.fusion.pooling)
        return F.normalize(proj(summary), dim=-1)

    def param_groups(
        self,
        weight_decay: float,
        head_lr_mult: float = 1.0,
        base_lr: float | None = None,
        layer_decay: float = 1.0,
    ) -> list[dict]:
        """AdamW groups: backbone (ViT + text encoder) vs fusion + heads (lr × ``head_lr_mult``).

        No weight decay on biases, norms (any 1-D parameter), embeddings, position / CLS / mask
        tokens, memory slots and the logit scale. ``layer_decay`` < 1 (layer-wise lr decay, as
        MAE / BEiT fine-tune): a parameter at depth ``k`` of :meth:`layer_depth` also gets
        ``layer_decay ** (num_depths - k)``, so the embeddings move least and whatever sits on
        top (a task head) moves at the full rate. Each group has ``lr_mult`` (and ``lr`` =
        ``base_lr × lr_mult`` if ``base_lr`` is given) and a ``name``.
        """
        no_decay_markers = (
            "embeddings",
            "pos_embed",
            "cls_token",
            "mask_token",
            "type_embed",
            "memory.slots",
            "logit_scale",
        )
        top = self.num_depths()
        groups: dict[tuple[bool, bool, int], list[nn.Parameter]] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            backbone = name.startswith(("vision.", "text."))
            decay = param.ndim >= 2 and not any(m in name for m in no_decay_markers)
            depth = self.layer_depth(name) if layer_decay != 1.0 else top
            groups.setdefault((backbone, decay, depth), []).append(param)
        out = []
        for (backbone, decay, depth), params in sorted(groups.items(), reverse=True):
            mult = (1.0 if backbone else head_lr_mult) * layer_decay ** (top - depth)
            name = f"{'backbone' if backbone else 'head'}_{'decay' if decay else 'no_decay'}"
            group = {
                "params": params,
                "weight_decay": weight_decay if decay else 0.0,
                "lr_mult": mult,
                "name": name if depth == top else f"{name}_depth{depth}",
            }
            if base_lr is not None:
                group["lr"] = base_lr * mult
            out.append(group)
        return out

    def num_depths(self) -> int:
        """Depth of a task head on top of this backbone (:meth:`layer_depth` is below it)."""
        encoders = max(self._config.vision.depth, self._config.text.num_layers)
        return encoders + self._config.fusion.num_layers + 2

    def layer_depth(self, name: str) -> int:
        """Depth of parameter ``name`` for layer-wise lr decay: 0 = patch / token embeddings;
        1..E the encoder blocks (vision and text spread over the same E = the deeper encoder's
        depth, so both streams decay alike); then the fusion layers; the poolers and
        pre-training heads at ``num_depths() - 1``."""
        encoders = max(self._config.vision.depth, self._config.text.num_layers)
        fusion = self._config.fusion.num_layers
        parts = name.split(".")

        def block(prefix: tuple[str, ...], count: int) -> int | None:
            if tuple(parts[: len(prefix)]) == prefix and parts[len(prefix)].isdigit():
                return round((int(parts[len(prefix)]) + 1) * encoders / count)
            return None

        for prefix, count in (
            (("vision", "vit", "blocks"), self._config.vision.depth),
            (("text", "model", "encoder", "layer"), self._config.text.num_layers),
        ):
            found = block(prefix, count)
            if found is not None:
                return found
        if parts[0] in ("vision", "text"):
            return encoders if "norm" in parts[2] else 0  # final encoder norm / embeddings
        if parts[0] == "fusion":
            if parts[1] in ("text_layers", "image_layers"):
                return encoders + 1 + int(parts[2])
            return encoders + (fusion if "norm" in parts[1] else 1)
        return self.num_depths() - 1

    def flops_per_sample(self) -> float:
        """Analytic training FLOPs (forward + backward) per sample of one step (for MFU)."""
        return training_flops_per_sample(self._config)

    # ---------------------------------------------------------------- building blocks
    def _run(
        self,
        pixel_values: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        keep_ids: Tensor | None = None,
        image_layer: int | None = None,
    ) -> _Pass:
        """Encoders (image patches ``keep_ids`` only) + fusion + poolers."""
        v = self.vision(pixel_values, keep_ids)
        t = self.text(input_ids, attention_mask)
        v0, t0 = self.fusion.embed(v, t)
        fusion_out = self.fusion(v0, t0, attention_mask, image_layer)
        text_pooled = self.text_pooler(fusion_out.text, attention_mask)
        image_pooled = self.image_pooler(fusion_out.image)
        fused = fused_feature(text_pooled, image_pooled)
        return _Pass(v, t, v0, t0, fusion_out, image_pooled, text_pooled, fused)

    def _mim(
        self,
        run: _Pass,
        patch_mask: PatchMask,
        clean_images: Tensor,
        sample_weight: Tensor | None = None,
    ) -> Tensor:
        """MIM loss of a pass against the CLEAN images' patches."""
        assert self.mim_decoder is not None and run.fusion.image_at_layer is not None
        pred = self.mim_decoder(run.fusion.image_at_layer, patch_mask.ids_restore)
        target = O.pixel_targets(
            clean_images, self._config.vision.patch_size, self._config.decoder.norm_pix_loss
        )
        return O.mim_loss(pred, target, patch_mask.mask, sample_weight)

    def _mlm(self, run: _Pass, labels: Tensor) -> Tensor:
        """MLM loss on the labelled positions only (the vocab projection is the costly part)."""
        assert self.mlm_head is not None
        selected = labels != IGNORE_INDEX
        if not bool(selected.any()):  # nothing masked in this pass: 0, still in the graph
            return O._zero_like_graph(self.mlm_head(run.fusion.text[:, :1]))
        hidden = run.fusion.text[selected]  # [M, d]
        return O.mlm_loss(self.mlm_head(hidden), labels[selected])

    def _logit_scale(self) -> Tensor:
        return self.logit_scale.exp().clamp(max=1.0 / self._config.objectives.temperature_min)

    def _itm_negative_index(
        self, batch_size: int, t2i: Tensor | None, device: torch.device
    ) -> Tensor:
        """Image index for each text's negative: hard (∝ softmax(sim), not itself) or a roll."""
        if t2i is not None and self._config.objectives.itm_hard_negatives:
            # + 1e-6 keeps a row valid when the softmax puts all its mass on the diagonal.
            weights = torch.softmax(t2i.detach().float(), dim=1) + 1e-6
            weights = weights.masked_fill(torch.eye(batch_size, dtype=torch.bool, device=device), 0)
            return torch.multinomial(weights, 1)[:, 0]
        shift = int(torch.randint(1, batch_size, (1,)).item())
        return (torch.arange(batch_size, device=device) + shift) % batch_size

    def _text_mask(self, ids: Tensor, eligible: Tensor, targets: Tensor | None = None) -> TokenMask:
        t, o = self._config.text, self._config.objectives
        return random_token_mask(
            ids,
            eligible,
            probability=o.mlm_probability,
            mask_token_id=t.mask_token_id,
            vocab_size=t.vocab_size,
            first_regular_id=max(t.special_token_ids) + 1,
            targets=targets,
        )

    # ---------------------------------------------------------------- joint step
    def forward_joint(self, batch: dict[str, Tensor], progress: float = 1.0) -> PretrainOutput:
        """Our efficient step (see the module docstring for the pass structure)."""
        cfg, obj = self._config, self._config.objectives
        images, ids = batch["pixel_values"], batch["input_ids"]
        attn, special = batch["attention_mask"], batch["special_tokens_mask"]
        b, device = ids.shape[0], ids.device
        eligible = eligible_tokens(attn, special)
        losses: dict[str, Tensor] = {}
        metrics: dict[str, float] = {}

        # 1. clean joint pass: both masks, one encoder + fusion pass
        patch_mask = (
            random_patch_mask(b, cfg.vision.num_patches, obj.mim_mask_ratio, device)
            if obj.mim
            else None
        )
        token_mask = self._text_mask(ids, eligible) if obj.mlm else None
        clean = self._run(
            images,
            token_mask.input_ids if token_mask is not None else ids,
            attn,
            patch_mask.keep_ids if patch_mask is not None else None,
            cfg.decoder_read_layer if obj.mim else None,
        )
        if patch_mask is not None:
            losses["mim"] = self._mim(clean, patch_mask, images)
        if token_mask is not None:
            losses["mlm"] = self._mlm(clean, token_mask.labels)

        t2i = None
        if self.has_contrastive:
            scale = self._logit_scale()
            metrics["temperature"] = float(1.0 / scale.detach())
            if obj.gla_global:
                t_emb = self._text_embedding(clean.text_unimodal, attn)
                v_emb = self._image_embedding(clean.image_unimodal)
                losses["gla_global"] = O.gla_global_loss(t_emb, v_emb, scale)
                t2i = scale * t_emb @ v_emb.t()
            if obj.gla_local:
                t_tok = F.normalize(self.text_contrastive(clean.text_unimodal), dim=-1)
                v_tok = F.normalize(self.image_contrastive(clean.image_unimodal[:, 1:]), dim=-1)
                valid = eligible
                if token_mask is not None:  # corrupted positions carry no alignment signal
                    valid = valid & (token_mask.labels == IGNORE_INDEX)
                losses["gla_local"] = O.gla_local_loss(t_tok, valid, v_tok, scale)

        # 2. ITM: positives = pass 1 pairs, negatives = fusion layers only on swapped pairs
        if self.itm_head is not None:
            fused = clean.fused
            is_match = torch.ones(b, dtype=torch.long, device=device)
            if b >= 2:
                neg = self._itm_negative_index(b, t2i, device)
                fused_neg = self.fuse(clean.image_embedded[neg], clean.text_embedded, attn)
                fused = torch.cat([fused, fused_neg])
                is_match = torch.cat([is_match, torch.zeros_like(is_match)])
            logits = self.itm_head(fused)
            losses["itm"] = O.itm_loss(logits, is_match)
            metrics["itm_acc"] = float((logits.argmax(-1) == is_match).float().mean())

        if obj.domain_align and "domain_ids" in batch:
            losses["domain_align"] = self._domain_align(clean.fused, batch["domain_ids"])
        elif obj.domain_align:
            losses["domain_align"] = O._zero_like_graph(clean.fused)

        # 3. degraded pass (perturbed views and / or dropped modalities)
        if cfg.needs_degraded_pass:
            self._degraded_step(batch, clean, losses, metrics, progress)
        return self._total(losses, metrics, progress)

    def _domain_align(self, fused: Tensor, domain_ids: Tensor) -> Tensor:
        if self._config.robust.domain_align_method == "coral":
            return O.coral_loss(fused, domain_ids)
        return O.mmd_loss(fused, domain_ids)

    def _consistency_target(self, batch: dict[str, Tensor], clean: _Pass) -> Tensor:
        """``z``: fused feature of the clean batch the consistency terms pull towards (no grad).

        ``"unmasked"``: one more encoder + fusion pass on the full clean inputs (forward only);
        ``"masked"``: the joint pass's own (masked) feature.
        """
        if self._config.robust.consistency_target == "masked":
            return clean.fused.detach()
        with torch.no_grad():
            full = self._run(batch["pixel_values"], batch["input_ids"], batch["attention_mask"])
        return full.fused

    def _degraded_step(
        self,
        batch: dict[str, Tensor],
        clean: _Pass,
        losses: dict[str, Tensor],
        metrics: dict[str, float],
        progress: float,
    ) -> None:
        cfg, obj, robust = self._config, self._config.objectives, self._config.robust
        recon = robust.degraded_reconstruction
        view = build_degraded_batch(batch, cfg, progress)
        if view is None:  # modality resilience only, and nothing dropped this step
            for name, head in (("modality_resilience", self.mr_head),):
                if head is not None:
                    losses[name] = O._zero_like_graph(head(clean.fused))
                    with torch.no_grad():
                        projected = head.project(clean.fused)
                    stats = O.collapse_statistics(projected, projected[:0], projected[:0])
                    for stat, value in {**stats, "variance": 0.0, "covariance": 0.0}.items():
                        metrics[f"{name}_{stat}"] = value
            return
        rows = view.rows
        aware = robust.perturbation_aware_masking and view.image_view

        patch_mask = None
        if obj.mim:  # masked like the clean pass: a cheaper encoder and the MIM input
            ratio = robust.perturbed_image_mask_ratio if aware else obj.mim_mask_ratio
            if aware:
                deviation = patch_deviation(
                    batch["pixel_values"][rows], view.pixel_values, cfg.vision.patch_size
                )
                patch_mask = perturbation_aware_patch_mask(deviation, ratio)
            else:
                patch_mask = random_patch_mask(
                    len(rows), cfg.vision.num_patches, ratio, rows.device
                )
            metrics["degraded_mask_ratio"] = float(patch_mask.mask[0].float().mean())
        token_mask = None
        if obj.mlm and recon:
            # MLM targets only where the text is the clean one (a style-shifted text no
            # longer aligns token by token with it)
            eligible = eligible_tokens(view.attention_mask, view.special_tokens_mask)
            token_mask = self._text_mask(view.input_ids, eligible & view.clean_text[:, None])

        run = self._run(
            view.pixel_values,
            token_mask.input_ids if token_mask is not None else view.input_ids,
            view.attention_mask,
            patch_mask.keep_ids if patch_mask is not None else None,
            cfg.decoder_read_layer if (obj.mim and recon) else None,
        )
        if recon and patch_mask is not None:
            # a dropped image has no MIM target; the clean image's patches are the targets
            weight = (~view.drop_image).float()
            clean_images = batch["pixel_values"][rows]
            losses["mim_degraded"] = self._mim(run, patch_mask, clean_images, weight)
        if token_mask is not None:
            losses["mlm_degraded"] = self._mlm(run, token_mask.labels)

        if obj.domain_consistency or obj.modality_resilience:
            target = self._consistency_target(batch, clean)
            for name, head, sel in (
                ("domain_consistency", self.dc_head, ~view.dropped),
                ("modality_resilience", self.mr_head, view.dropped),
            ):
                if head is None:
                    continue
                with torch.no_grad():
                    projected = head.project(target)  # [B, k] the whole clean batch
                center = O.consistency_center(projected) if robust.consistency_center else None
                if bool(sel.any()):
                    online_projected = head.project(run.fused[sel])
                    online = head.predictor(online_projected)
                    target_rows = projected[rows][sel]
                    loss = O.consistency_loss(online, target_rows, center)
                    variance = cov = loss.new_zeros(())
                    if len(online_projected) > 1:  # logged always, optimised when weighted
                        variance, cov = O.variance_covariance(online_projected)
                        if robust.variance_weight > 0 or robust.covariance_weight > 0:
                            loss = loss + robust.variance_weight * variance
                            loss = loss + robust.covariance_weight * cov
                    losses[name] = loss
                    pair = (online, target_rows)
                    if center is not None:
                        pair = (online - center, target_rows - center)
                    stats = O.collapse_statistics(projected, *pair)
                    stats.update(variance=float(variance.detach()), covariance=float(cov.detach()))
                else:  # nobody in this role this step: 0, still in the graph
                    losses[name] = O._zero_like_graph(head(run.fused))
                    stats = O.collapse_statistics(projected, projected[:0], projected[:0])
                    stats.update(variance=0.0, covariance=0.0)
                for stat, value in stats.items():
                    metrics[f"{name}_{stat}"] = value
        metrics["view_image"] = float(view.image_view)
        metrics["view_text"] = float(view.text_view)
        metrics["severity_max"] = float(view.severity_max)
        metrics["dropped_text"] = float(view.drop_text.float().mean())
        metrics["dropped_image"] = float(view.drop_image.float().mean())

    def _total(
        self, losses: dict[str, Tensor], metrics: dict[str, float], progress: float
    ) -> PretrainOutput:
        """``L = Σ_clean w_k L_k + α r(t) Σ w_k L_k^degraded + Σ_robust λ_k r(t) L_k``; every
        term (per pass) is also returned detached in ``losses`` (logged and plotted)."""
        obj, robust = self._config.objectives, self._config.robust
        ramp = O.ramp(progress, robust.ramp_fraction)
        total = None
        ordered: dict[str, Tensor] = {}
        weights: dict[str, float] = {}
        for name in obj.enabled():
            weights[name] = obj.weight(name) * (ramp if name in ROBUST_OBJECTIVES else 1.0)
        for name in ("mim", "mlm"):
            if f"{name}_degraded" in losses:
                weights[f"{name}_degraded"] = robust.degraded_weight * ramp * obj.weight(name)
        for name, weight in weights.items():
            if name in ROBUST_OBJECTIVES or name.endswith("_degraded"):
                metrics[f"weight_{name}"] = weight
            term = weight * losses[name]
            total = term if total is None else total + term
            ordered[name] = losses[name].detach()
        assert total is not None
        # the collapse statistics of the consistency terms, logged and plotted like a loss
        diagnostics = {
            f"{name}_{stat}": torch.tensor(metrics[f"{name}_{stat}"])
            for name in ("domain_consistency", "modality_resilience")
            for stat in O.COLLAPSE_STATISTICS
            if f"{name}_{stat}" in metrics
        }
        return PretrainOutput(total, ordered, metrics, diagnostics)

    # ---------------------------------------------------------------- M3AE step
    def forward_m3ae_style(self, batch: dict[str, Tensor], progress: float = 1.0) -> PretrainOutput:
        """M3AE's step: one pass per objective (MLM | MIM | ITM), the others' inputs clean.

        * MLM: full clean image + masked text;
        * MIM: masked image + clean text;
        * ITM: clean full image + clean text, 50 % of the images swapped in-batch (a roll).
        """
        cfg, obj = self._config, self._config.objectives
        images, ids = batch["pixel_values"], batch["input_ids"]
        attn, special = batch["attention_mask"], batch["special_tokens_mask"]
        b, device = ids.shape[0], ids.device
        losses: dict[str, Tensor] = {}
        metrics: dict[str, float] = {}
        if obj.mlm:
            token_mask = self._text_mask(ids, eligible_tokens(attn, special))
            run = self._run(images, token_mask.input_ids, attn)
            losses["mlm"] = self._mlm(run, token_mask.labels)
        if obj.mim:
            patch_mask = random_patch_mask(b, cfg.vision.num_patches, obj.mim_mask_ratio, device)
            run = self._run(images, ids, attn, patch_mask.keep_ids, cfg.decoder_read_layer)
            losses["mim"] = self._mim(run, patch_mask, images)
        if obj.itm:
            assert self.itm_head is not None
            swap = (torch.rand(b, device=device) < 0.5) & (b >= 2)
            neg = torch.arange(b, device=device)
            if b >= 2:
                neg = self._itm_negative_index(b, None, device)
            itm_images = torch.where(swap[:, None, None, None], images[neg], images)
            logits = self.itm_head(self._run(itm_images, ids, attn).fused)
            is_match = (~swap).long()
            losses["itm"] = O.itm_loss(logits, is_match)
            metrics["itm_acc"] = float((logits.argmax(-1) == is_match).float().mean())
        return self._total(losses, metrics, progress)
