"""AdamW parameter groups of the MMR backbone: backbone vs fusion + heads, the no-weight-decay
rule, and the parameter depths of layer-wise learning-rate decay.
"""

from __future__ import annotations

from torch import nn

from robust_mmr_pipeline.engine.optim import no_weight_decay
from robust_mmr_pipeline.model.config import ModelConfig

# names of the MMR parameters that get no weight decay besides the 1-D ones (engine's rule)
NO_DECAY_NAME_PARTS = (
    "embeddings",
    "pos_embed",
    "cls_token",
    "mask_token",
    "type_embed",
    "memory.slots",
    "logit_scale",
)


def mmr_param_groups(
    model: nn.Module,
    weight_decay: float,
    head_lr_mult: float = 1.0,
    base_lr: float | None = None,
    layer_decay: float = 1.0,
) -> list[dict]:
    """AdamW groups: backbone (ViT + text encoder) vs fusion + heads (lr × ``head_lr_mult``).

    No weight decay on biases, norms (any 1-D parameter), embeddings, position / CLS / mask
    tokens, memory slots and the logit scale. ``layer_decay`` < 1 (layer-wise lr decay, as
    MAE / BEiT fine-tune): a parameter at depth ``k`` of ``model.layer_depth`` also gets
    ``layer_decay ** (num_depths - k)``, so the embeddings move least and whatever sits on
    top (a task head) moves at the full rate. Each group has ``lr_mult`` (and ``lr`` =
    ``base_lr × lr_mult`` if ``base_lr`` is given) and a ``name``.
    """
    top = model.num_depths()
    groups: dict[tuple[bool, bool, int], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        backbone = name.startswith(("vision.", "text."))
        decay = not no_weight_decay(param, name, NO_DECAY_NAME_PARTS)
        depth = model.layer_depth(name) if layer_decay != 1.0 else top
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


def num_depths(config: ModelConfig) -> int:
    """Depth of a task head on top of the backbone (:func:`layer_depth` is below it)."""
    encoders = max(config.vision.depth, config.text.num_layers)
    return encoders + config.fusion.num_layers + 2


def layer_depth(config: ModelConfig, name: str) -> int:
    """Depth of parameter ``name`` for layer-wise lr decay: 0 = patch / token embeddings;
    1..E the encoder blocks (vision and text spread over the same E = the deeper encoder's
    depth, so both streams decay alike); then the fusion layers; the poolers and
    pre-training heads at ``num_depths(config) - 1``."""
    encoders = max(config.vision.depth, config.text.num_layers)
    fusion = config.fusion.num_layers
    parts = name.split(".")

    def block(prefix: tuple[str, ...], count: int) -> int | None:
        if tuple(parts[: len(prefix)]) == prefix and parts[len(prefix)].isdigit():
            return round((int(parts[len(prefix)]) + 1) * encoders / count)
        return None

    for prefix, count in (
        (("vision", "vit", "blocks"), config.vision.depth),
        (("text", "model", "encoder", "layer"), config.text.num_layers),
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
    return num_depths(config) - 1
