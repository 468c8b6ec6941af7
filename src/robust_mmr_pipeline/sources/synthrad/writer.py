"""Write SynthRad to disk (PNG files + ground truth) and describe it in the unified schema."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from robust_mmr_pipeline.io_utils import atomic_text_file
from robust_mmr_pipeline.schema import SourceTables, conform, empty
from robust_mmr_pipeline.sources.synthrad.config import SynthRadConfig
from robust_mmr_pipeline.sources.synthrad.generate import (
    SOURCE,
    block_size,
    generate_studies,
    image_id,
)

GROUND_TRUTH = "ground_truth.jsonl"
CONFIG_FILE = "synthrad_config.json"
_CHUNK_BLOCKS = 32  # blocks generated per write chunk: bounds memory for large cohorts


def image_path(index: int) -> str:
    """Path of a study's PNG relative to the output root (1000 files per folder)."""
    return f"images/{index // 1000:04d}/{index:06d}.png"


def encode_png(pixels: Any, compress_level: int) -> bytes:
    """PNG bytes of a grayscale uint8 ``[H, W]`` array."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(
        buffer, format="PNG", optimize=False, compress_level=compress_level
    )
    return buffer.getvalue()


def write_synthrad(
    config: SynthRadConfig, out_dir: Path, source_name: str = SOURCE
) -> SourceTables:
    """Generate ``config.n_studies`` studies, write them under ``out_dir`` and return the tables.

    Files: ``images/NNNN/XXXXXX.png`` (grayscale 'L', NNNN = index // 1000),
    ``ground_truth.jsonl`` (one study per line, as from :func:`generate_studies`) and
    ``synthrad_config.json``. Table paths are relative to ``out_dir``. Ids follow the project
    convention ``<source_name>:<local id>``: image_id and sample_id ``synthrad:000042``,
    pair_id ``synthrad:000042:report`` / ``:caption``, qid ``synthrad:000042:q03``; the
    ``source`` column is ``source_name`` (distinct names keep two cohorts' ids apart). Splits
    come from the per-study hash (held-out sites: ``test``), shared by all of a study's rows.
    A ``config.corpus`` writes images and pairs only, of the first ``n_studies`` studies drawn
    at a training site (the held-out sites' indices are skipped).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, Any]]] = {
        "images": [],
        "pairs": [],
        "vqa": [],
        "classification": [],
    }
    chunk = block_size(config.image_size) * _CHUNK_BLOCKS
    made_dirs: set[Path] = set()
    with atomic_text_file(out_dir / GROUND_TRUTH) as truth:
        for images, records in _studies(config, chunk):
            for pixels, record in zip(images, records, strict=True):
                record["image_id"] = image_id(record["index"], source_name)
                if config.corpus:  # unlabeled: no QA, no label reach the tables or the truth file
                    del record["qa"], record["label"]
                rel = image_path(record["index"])
                target = out_dir / rel
                if target.parent not in made_dirs:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made_dirs.add(target.parent)
                data = encode_png(pixels, config.png_compress_level)
                target.write_bytes(data)
                digest = hashlib.sha256(data).hexdigest()
                _add_rows(rows, record, rel, pixels.shape, digest, source_name)
                truth.write(json.dumps(record, separators=(",", ":")) + "\n")
    with atomic_text_file(out_dir / CONFIG_FILE) as handle:
        handle.write(json.dumps(config.to_dict(), indent=2) + "\n")
    return SourceTables(
        **{
            name: conform(pd.DataFrame(table), name, origin=f"{source_name} ({out_dir})")
            if table
            else empty(name)
            for name, table in rows.items()
        },
        rejects=empty("rejects"),
    )


def _studies(config: SynthRadConfig, chunk: int) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """``(images, records)`` chunks of the studies to write: indices ``0..n_studies-1``, or for a
    corpus the first ``n_studies`` indices whose study is drawn at a training site."""
    if not config.corpus:
        for start in range(0, config.n_studies, chunk):
            yield generate_studies(config, range(start, min(config.n_studies, start + chunk)))
        return
    written, start = 0, 0
    while written < config.n_studies:
        images, records = generate_studies(config, range(start, start + chunk))
        keep = [k for k, r in enumerate(records) if not r["held_out"]][: config.n_studies - written]
        written += len(keep)
        start += chunk
        yield images[keep], [records[k] for k in keep]


def _add_rows(
    rows: dict[str, list[dict[str, Any]]],
    record: dict[str, Any],
    rel: str,
    shape: tuple[int, ...],
    sha256: str,
    source_name: str,
) -> None:
    iid, split = record["image_id"], record["split"]
    rows["images"].append(
        {
            "image_id": iid,
            "source": source_name,
            "path": rel,
            "modality": record["modality"],
            "organ": record["organ"],
            "domain": record["site"],
            "width": shape[1],
            "height": shape[0],
            "sha256": sha256,
        }
    )
    for kind in ("report", "caption"):
        rows["pairs"].append(
            {
                "pair_id": f"{iid}:{kind}",
                "image_id": iid,
                "text": record[kind],
                "text_kind": kind,
                "style": record["style"],
            }
        )
    if "qa" not in record:  # a corpus study: image and pairs only
        return
    for q, item in enumerate(record["qa"]):
        rows["vqa"].append({"qid": f"{iid}:q{q:02d}", "image_id": iid, **item, "split": split})
    rows["classification"].append(
        {
            "sample_id": iid,
            "image_id": iid,
            "text": record["caption"],
            "label": record["label"],
            "split": split,
        }
    )
