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
   ``mlm_degraded`` (targets = the CLEAN patches / tokens; a shifted text's tokens predict the
   clean tokens the collator aligned them with, unaligned ones and dropped texts get no MLM).
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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust_mmr_pipeline.engine.registry import register_model_class
from robust_mmr_pipeline.model.config import ModelConfig
from robust_mmr_pipeline.model.flops import training_flops_per_sample
from robust_mmr_pipeline.model.fusion import CoAttentionFusion, fused_feature
from robust_mmr_pipeline.model.heads import (
    ConsistencyHead,
    ITMHead,
    MIMDecoder,
    MLMHead,
    Pooler,
    ProjectionHead,
    summarize_tokens,
)
from robust_mmr_pipeline.model.outputs import EncoderPass, FusedOutput, PretrainOutput
from robust_mmr_pipeline.model.param_groups import layer_depth, mmr_param_groups, num_depths
from robust_mmr_pipeline.model.pretrain_step import PretrainStepMixin
from robust_mmr_pipeline.model.text import TextEncoder
from robust_mmr_pipeline.model.views import check_perturbations
from robust_mmr_pipeline.model.vision import VisionEncoder


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
class MMRModel(PretrainStepMixin, nn.Module):
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
        """AdamW groups: backbone vs fusion + heads, no decay where the rule says, layer-wise
        lr decay (see :func:`~robust_mmr_pipeline.model.param_groups.mmr_param_groups`)."""
        return mmr_param_groups(self, weight_decay, head_lr_mult, base_lr, layer_decay)

    def num_depths(self) -> int:
        """Depth of a task head on top of this backbone (:meth:`layer_depth` is below it)."""
        return num_depths(self._config)

    def layer_depth(self, name: str) -> int:
        """Depth of parameter ``name`` for layer-wise lr decay (see
        :func:`~robust_mmr_pipeline.model.param_groups.layer_depth`)."""
        return layer_depth(self._config, name)

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
    ) -> EncoderPass:
        """Encoders (image patches ``keep_ids`` only) + fusion + poolers."""
        v = self.vision(pixel_values, keep_ids)
        t = self.text(input_ids, attention_mask)
        v0, t0 = self.fusion.embed(v, t)
        fusion_out = self.fusion(v0, t0, attention_mask, image_layer)
        text_pooled = self.text_pooler(fusion_out.text, attention_mask)
        image_pooled = self.image_pooler(fusion_out.image)
        fused = fused_feature(text_pooled, image_pooled)
        return EncoderPass(v, t, v0, t0, fusion_out, image_pooled, text_pooled, fused)
