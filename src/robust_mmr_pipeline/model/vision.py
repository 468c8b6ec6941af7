"""Image encoder: a timm ViT that drops masked patches before its blocks (MAE).

    x [B, C, H, W] in [0, 1]
      -> normalise (x - mean) / std
      -> patch_embed               [B, N, D]       N = (H / p) * (W / p)
      -> + pos_embed[1:]           (CLS gets cls_token + pos_embed[0])
      -> gather kept patches       [B, K, D]       K = N - round(ratio * N)
      -> cat CLS, blocks, norm     [B, 1 + K, D]

Dropping (not zeroing) masked patches is what makes MIM cheap: the encoder attends over
1 + K tokens, a quarter of the image at ratio 0.75.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from timm.models import adapt_input_conv
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import Tensor, nn

from robust_mmr_pipeline.model.config_sections import VisionConfig
from robust_mmr_pipeline.model.weights import read_state_dict

log = logging.getLogger(__name__)


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """``[B, C, H, W] -> [B, N, p * p * C]`` (row-major patches, channels last, as MAE)."""
    b, c, h, w = images.shape
    gh, gw = h // patch_size, w // patch_size
    x = images.reshape(b, c, gh, patch_size, gw, patch_size)
    x = torch.einsum("bchpwq->bhwpqc", x)
    return x.reshape(b, gh * gw, patch_size * patch_size * c)


def unpatchify(patches: Tensor, patch_size: int, channels: int) -> Tensor:
    """Inverse of :func:`patchify`: ``[B, N, p * p * C] -> [B, C, H, W]`` (square grid)."""
    b, n, _ = patches.shape
    g = math.isqrt(n)
    x = patches.reshape(b, g, g, patch_size, patch_size, channels)
    x = torch.einsum("bhwpqc->bchpwq", x)
    return x.reshape(b, channels, g * patch_size, g * patch_size)


class VisionEncoder(nn.Module):
    """timm ``VisionTransformer`` with MAE-style patch dropping.

    Attributes:
        vit: the timm model (``num_classes=0``, ``global_pool=""``): its blocks use
            ``F.scaled_dot_product_attention``.
    """

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        self.vit = VisionTransformer(
            img_size=config.image_size,
            patch_size=config.patch_size,
            in_chans=config.in_chans,
            embed_dim=config.embed_dim,
            depth=config.depth,
            num_heads=config.num_heads,
            mlp_ratio=config.mlp_ratio,
            qkv_bias=True,
            num_classes=0,
            global_pool="",
            class_token=True,
            drop_path_rate=config.drop_path_rate,
        )
        mean = torch.tensor(config.pixel_mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(config.pixel_std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)
        if config.pretrained_path:
            load_vision_checkpoint(self.vit, config.pretrained_path)

    @property
    def width(self) -> int:
        return self.config.embed_dim

    @property
    def num_patches(self) -> int:
        return self.config.num_patches

    def forward(self, pixel_values: Tensor, keep_ids: Tensor | None = None) -> Tensor:
        """Encode images, keeping only the patches in ``keep_ids``.

        Args:
            pixel_values: float ``[B, C, H, W]`` in ``[0, 1]``.
            keep_ids: long ``[B, K]`` indices into the N patches; ``None`` keeps all.

        Returns:
            ``[B, 1 + K, D]``: CLS then the kept patches in ``keep_ids`` order.
        """
        vit = self.vit
        x = (pixel_values - self.pixel_mean) / self.pixel_std
        x = vit.patch_embed(x)  # [B, N, D]
        x = x + vit.pos_embed[:, 1:, :]
        if keep_ids is not None:
            index = keep_ids.unsqueeze(-1).expand(-1, -1, x.shape[-1])
            x = torch.gather(x, 1, index)  # [B, K, D]
        cls = (vit.cls_token + vit.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        x = vit.norm_pre(vit.pos_drop(x))
        x = vit.blocks(x)
        return vit.norm(x)


def load_vision_checkpoint(vit: VisionTransformer, path: str | Path) -> None:
    """Load a local ViT checkpoint (``.safetensors`` or a torch state dict); never downloads.

    Accepts timm state dicts, ``{"model": ...}`` / ``{"state_dict": ...}`` wrappers, DDP's
    ``module.`` prefix and a whole MMR checkpoint (its ``vision.vit.`` weights are taken).
    timm's ``checkpoint_filter_fn`` then converts OpenAI-CLIP / OpenCLIP / DINOv2 layouts and
    resamples position and patch embeddings to this model; RGB patch weights are summed for a
    grayscale model (``adapt_input_conv``). Classifier heads are ignored.

    Raises:
        FileNotFoundError: the file does not exist.
        WeightFileError: the file holds pickled objects or is not a weight file.
        ValueError: no encoder weight matched, or an encoder block weight is missing.
    """
    path = Path(path)
    state = read_state_dict(path, "vision.pretrained_path")
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    ours = "vision.vit."  # VisionEncoder inside MMRModel
    if any(k.startswith(ours) for k in state):
        state = {k.removeprefix(ours): v for k, v in state.items() if k.startswith(ours)}
    state = checkpoint_filter_fn(state, vit)
    weight = state.get("patch_embed.proj.weight")
    in_chans = vit.patch_embed.proj.weight.shape[1]
    if weight is not None and weight.ndim == 4 and weight.shape[1] != in_chans:
        state["patch_embed.proj.weight"] = adapt_input_conv(in_chans, weight)
    state = {k: v for k, v in state.items() if not k.startswith("head")}
    result = vit.load_state_dict(state, strict=False)
    own = {k for k in vit.state_dict() if not k.startswith("head")}
    matched = own - set(result.missing_keys)
    if not matched:
        raise ValueError(f"no ViT weight in {path} matches the model (keys: {list(state)[:5]})")
    missing = [k for k in result.missing_keys if k.startswith(("blocks.", "patch_embed"))]
    if missing:
        raise ValueError(f"{path} lacks encoder weights, e.g. {missing[:5]}")
    log.info(
        "loaded %d ViT tensors from %s (missing %s, unexpected %s)",
        len(matched),
        path,
        result.missing_keys,
        result.unexpected_keys[:10],
    )
