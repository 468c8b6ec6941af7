"""Local weight files (``vision.pretrained_path``, ``text.pretrained_path``), read without
unpickling code: a ``.safetensors`` file, or a torch file holding tensors only (``torch.load``
with ``weights_only=True``). A file that holds pickled Python objects is refused with the fix
(convert it to safetensors where it was made), never loaded with ``weights_only=False``.

:func:`check_weight_source` runs before the pipeline (the parameter check of
``params:pretrain``), so a missing or unreadable file stops the run before any node.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

from robust_mmr_pipeline.model.config_sections import ConfigError


class WeightFileError(ConfigError):
    """A weight file exists but cannot be read as tensors; the message names the setting, the
    file and the fix."""


def _fix(setting: str) -> str:
    return (
        f"Fix: save the weights as safetensors where the file was made "
        "(safetensors.torch.save_file(model.state_dict(), 'weights.safetensors'), or a torch "
        "file of tensors only: torch.save(model.state_dict(), path)) and point "
        f"{setting} at it; or remove {setting} to start from random weights."
    )


def missing_file_message(setting: str, path: Path) -> str:
    """The one-paragraph error of a ``pretrained_path`` that names no file."""
    return (
        f"{setting} does not exist: {path}. Fix: point {setting} at a local .safetensors or "
        "torch state-dict file (nothing is downloaded), or remove the setting to start from "
        "random weights."
    )


def read_state_dict(path: str | Path, setting: str) -> dict[str, Any]:
    """The tensors of a local weight file, without unpickling anything.

    Raises FileNotFoundError (no such file) or :class:`WeightFileError` (not safetensors and not
    a torch file of tensors only), each naming ``setting``, the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(missing_file_message(setting, path))
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightFileError(
                f"{setting} = {path} is not a readable safetensors file ({exc}). {_fix(setting)}"
            ) from None
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightFileError(
            f"{setting} = {path} holds pickled Python objects besides tensors (or is not a "
            "torch file): this project never unpickles code from a file, so it is not read. "
            f"{_fix(setting)}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise WeightFileError(
            f"{setting} = {path} is not a torch state-dict file ({type(exc).__name__}). "
            f"{_fix(setting)}"
        ) from None
    if not isinstance(state, dict):
        raise WeightFileError(
            f"{setting} = {path} holds a {type(state).__name__}, not a state dict of tensors. "
            f"{_fix(setting)}"
        )
    return state


def check_weight_source(path: str | Path, setting: str) -> None:
    """Check before a run that ``path`` can initialise weights: a weight file readable by
    :func:`read_state_dict`, or (``text.pretrained_path``) a local Hugging Face model folder."""
    path = Path(path)
    if path.is_dir():
        if setting.endswith("text.pretrained_path") and (path / "config.json").is_file():
            return
        raise WeightFileError(
            f"{setting} = {path} is a folder without a Hugging Face config.json. Fix: point "
            f"{setting} at a .safetensors or torch state-dict file"
            + (" or a local Hugging Face model folder" if "text." in setting else "")
            + "."
        )
    read_state_dict(path, setting)
