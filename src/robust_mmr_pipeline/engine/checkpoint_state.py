"""Model, optimizer and scheduler state to checkpoint files and back (safetensors + JSON)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from robust_mmr_pipeline.engine.checkpoint_layout import (
    FORMAT_VERSION,
    CheckpointError,
)
from robust_mmr_pipeline.engine.registry import (
    class_path,
    registered_name,
)

LOGGER = logging.getLogger(__name__)


def model_metadata(model: nn.Module, warn: bool = True) -> dict[str, Any]:
    """``model.json`` content: the registered class path and the model's config as a dict.

    ``warn`` logs a warning when the class is not registered (load_model would refuse it).
    """
    cls = type(model)
    name = registered_name(cls) or class_path(cls)
    if warn and registered_name(cls) is None:
        LOGGER.warning(
            "Model class %s is not registered with register_model_class: load_model() will "
            "refuse to rebuild it from this checkpoint.",
            name,
        )
    config = getattr(model, "config", None)
    if config is None:
        config_dict: dict[str, Any] = {}
    elif hasattr(config, "to_dict"):
        config_dict = dict(config.to_dict())
    elif isinstance(config, Mapping):
        config_dict = dict(config)
    else:
        raise CheckpointError(
            f"{name}.config must have to_dict() or be a mapping to be saved, got {type(config)}"
        )
    json.dumps(config_dict)  # fail early, with the offending type in the message
    return {"format_version": FORMAT_VERSION, "model_class": name, "config": config_dict}


def jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def optimizer_state_to_files(
    state_dict: Mapping[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten ``optimizer.state_dict()`` into tensors (safetensors) and JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    state_meta: dict[str, dict[str, Any]] = {}
    for index, param_state in state_dict["state"].items():
        entry: dict[str, Any] = {}
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                name = f"state/{index}/{key}"
                tensors[name] = value.detach().to("cpu").clone().contiguous()
                entry[key] = {"tensor": name}
            else:
                entry[key] = {"value": jsonable(value)}
        state_meta[str(index)] = entry
    groups = [jsonable(dict(group)) for group in state_dict["param_groups"]]
    meta = {"format_version": FORMAT_VERSION, "state": state_meta, "param_groups": groups}
    return tensors, meta


def optimizer_state_from_files(
    tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """Inverse of :func:`optimizer_state_to_files`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for index, entry in meta["state"].items():
        param_state: dict[str, Any] = {}
        for key, spec in entry.items():
            param_state[key] = tensors[spec["tensor"]] if "tensor" in spec else spec["value"]
        state[int(index)] = param_state
    groups = []
    for saved in meta["param_groups"]:
        group = dict(saved)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def scheduler_state_to_json(state: Mapping[str, Any]) -> dict[str, Any]:
    out = jsonable(dict(state))
    try:
        json.dumps(out)
    except TypeError as exc:
        raise CheckpointError(f"Scheduler state is not JSON-serialisable: {exc}") from exc
    return out
