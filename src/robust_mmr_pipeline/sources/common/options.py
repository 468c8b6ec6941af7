"""Reader arguments: the source name and the root folder (typed options are configs, parsed by
the reader base with :func:`robust_mmr_pipeline.typed_config.parse`)."""

from __future__ import annotations

import re
from pathlib import Path

from robust_mmr_pipeline.sources.common.bad_records import IngestionError

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def check_name(name: str) -> str:
    """Validate a source name (it prefixes every id the source produces)."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise IngestionError(
            f"source name {name!r} is not usable as an id prefix: use letters, digits, '_', '-' "
            "or '.', starting with a letter or digit (set `name` in ingestion.sources)."
        )
    return name


def check_root(root: Path | str, kind: str) -> Path:
    """Return ``root`` as a Path, raising IngestionError when the folder does not exist."""
    path = Path(root)
    if not path.is_dir():
        raise IngestionError(
            f"{kind}: dataset folder {path} does not exist. Point the source's `root` at your "
            f"copy of {kind} as published."
        )
    return path
