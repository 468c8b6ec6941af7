"""The MMR pre-training step: the joint step (clean, ITM-negative and degraded passes) and the
M3AE-style three-pass step, with their loss terms and total. See :mod:`.mmr` for the pass
structure and the total loss; mixed into :class:`~robust_mmr_pipeline.model.mmr.MMRModel`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

import robust_mmr_pipeline.model.objectives as O
from robust_mmr_pipeline.model.config_sections import ROBUST_OBJECTIVES
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
from robust_mmr_pipeline.model.outputs import EncoderPass, PretrainOutput
from robust_mmr_pipeline.model.views import build_degraded_batch


class PretrainStepMixin:
    """The pre-training step of :class:`~robust_mmr_pipeline.model.mmr.MMRModel` (which holds the
    encoders, fusion and heads these methods read, and ``_run``, one encoder + fusion pass)."""

    def _mim(
        self,
        run: EncoderPass,
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

    def _mlm(self, run: EncoderPass, labels: Tensor) -> Tensor:
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

    def _consistency_target(self, batch: dict[str, Tensor], clean: EncoderPass) -> Tensor:
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
        clean: EncoderPass,
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
            # targets are CLEAN tokens: a style-shifted text restores the clean report where
            # the collator aligned its tokens with it; a clean text predicts its own tokens
            eligible = eligible_tokens(view.attention_mask, view.special_tokens_mask)
            aligned = eligible & (view.clean_targets != IGNORE_INDEX)
            token_mask = self._text_mask(view.input_ids, aligned, view.clean_targets)
            if view.text_view:  # share of the shifted texts' tokens with a clean target
                shifted = eligible & ~view.clean_text[:, None]
                metrics["degraded_text_aligned"] = float(
                    (aligned & shifted).sum() / shifted.sum().clamp(min=1)
                )

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
