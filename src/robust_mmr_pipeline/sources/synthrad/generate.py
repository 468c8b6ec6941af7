"""In-memory generation of SynthRad studies: pixels plus ground truth, report, caption and QA.

Studies are produced in fixed blocks of consecutive indices (``block_size``): a block is always
rendered whole, by family and by site in vectorised batches, so the bytes of study ``i`` do not
depend on which other studies were requested.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

import robust_mmr_pipeline.sources.synthrad.abdomen as abdomen_family
import robust_mmr_pipeline.sources.synthrad.chest as chest_family
import robust_mmr_pipeline.sources.synthrad.head as head_family
from robust_mmr_pipeline.sources.synthrad.acquisition import acquire
from robust_mmr_pipeline.sources.synthrad.catalog import (
    FAMILIES,
    FAMILY_ORGAN,
    FAMILY_PLANE,
    FINDINGS,
    MODALITIES,
    NORMAL_LABEL,
)
from robust_mmr_pipeline.sources.synthrad.config import SPLIT_NAMES, SynthRadConfig
from robust_mmr_pipeline.sources.synthrad.plan import StudyPlan, sample_plan
from robust_mmr_pipeline.sources.synthrad.primitives import Canvas, smooth_field
from robust_mmr_pipeline.sources.synthrad.qa import write_qa
from robust_mmr_pipeline.sources.synthrad.rng import block_rng
from robust_mmr_pipeline.sources.synthrad.styles import REPORT_STYLES
from robust_mmr_pipeline.sources.synthrad.text import write_caption, write_report

SOURCE = "synthrad"
FAMILY_RENDERERS = (chest_family, head_family, abdomen_family)
COARSE_NODES = 10  # low-resolution size of the coarse texture field (organ-scale variation)
FINE_NODES = 28  # ... of the fine one (vessels, sulci, bowel gas)


def block_size(image_size: int) -> int:
    """Studies per rendering block: 64 at 128 px, fewer for larger images (bounded memory)."""
    return max(1, min(64, (64 * 128 * 128) // (image_size * image_size)))


def image_id(index: int, source: str = SOURCE) -> str:
    """``<source>:<index>``, the project's id convention (source name, then a local id)."""
    return f"{source}:{index:06d}"


def render_block(
    config: SynthRadConfig, block: int, render_findings: bool = True, canvas: Canvas | None = None
) -> tuple[np.ndarray, StudyPlan]:
    """Render every study of ``block``: uint8 ``[B, S, S]`` and the block's plan.

    ``canvas`` (capacity >= B) lets consecutive blocks reuse scratch buffers.
    """
    size, n = config.image_size, block_size(config.image_size)
    c = canvas if canvas is not None else Canvas(size, n)
    plan = sample_plan(config, np.arange(block * n, (block + 1) * n))
    rng = block_rng(config.seed, block)
    # Draw order is fixed (noise, coarse, fine) so each study's noise depends on the block only.
    draws = rng.integers(0, 65536, size=(n, size, size), dtype=np.uint16)
    coarse = rng.standard_normal((n, COARSE_NODES, COARSE_NODES), np.float32)
    fine = rng.standard_normal((n, FINE_NODES, FINE_NODES), np.float32)

    rendered = c.take(n)
    for family, renderer in enumerate(FAMILY_RENDERERS):
        rows = np.flatnonzero(plan.family == family)
        if len(rows):
            # Upsampling only the rows needed avoids gathering full-resolution fields.
            crs, fin = smooth_field(c, coarse[rows]), smooth_field(c, fine[rows])
            out = renderer.render(c, plan.subset(rows), crs, fin, render_findings)
            rendered[rows] = out
            c.give(out, crs, fin)
    images = np.empty((n, size, size), dtype=np.uint8)
    for s, site in enumerate(config.sites):
        rows = np.flatnonzero(plan.site == s)
        if len(rows):
            pixels = acquire(
                c, site, c.gather(rendered, rows), plan.modality[rows], plan.acq[rows], draws[rows]
            )
            images[rows] = pixels  # whole numbers in [0, 255]: the cast is exact
            c.give(pixels)
    c.give(rendered)
    return images, plan


def study_records(config: SynthRadConfig, plan: StudyPlan) -> list[dict[str, Any]]:
    """Ground-truth dicts (JSON-safe) for the studies of ``plan``, with report, caption and QA."""
    size = config.image_size
    boxes = np.zeros((len(plan), len(FINDINGS), 4))
    ctr = np.full(len(plan), np.nan)
    for family, renderer in enumerate(FAMILY_RENDERERS):
        rows = np.flatnonzero(plan.family == family)
        if len(rows):
            found, measures = renderer.annotate(plan.subset(rows), size)
            for finding, b in found.items():
                boxes[rows, finding] = b
            if "ctr" in measures:
                ctr[rows] = measures["ctr"]

    records = []
    for k in range(len(plan)):
        index = int(plan.index[k])
        family = int(plan.family[k])
        site = config.sites[int(plan.site[k])]
        findings = []
        for t in (int(plan.primary[k]), int(plan.secondary[k])):
            if t < 0:
                continue
            spec = FINDINGS[t]
            side, region = int(plan.side[k, t]), int(plan.region[k, t])
            mm = float(plan.size_mm[k, t, 0])
            findings.append(
                {
                    "type": spec.name,
                    "side": spec.sides[side] if side >= 0 else None,
                    "region": spec.regions[region] if region >= 0 else None,
                    "size": spec.sizes[int(plan.size[k, t])],
                    "size_mm": mm if mm > 0 else None,
                    "count": int(plan.count[k, t]),
                    "bbox": [round(float(x), 2) for x in boxes[k, t]],
                }
            )
        record: dict[str, Any] = {
            "index": index,
            "image_id": image_id(index),
            "site": site.name,
            "held_out": bool(plan.held_out[k]),
            "split": SPLIT_NAMES[int(plan.split[k])],
            "family": FAMILIES[family],
            "modality": MODALITIES[int(plan.modality[k])],
            "organ": FAMILY_ORGAN[family],
            "plane": FAMILY_PLANE[family],
            "label": findings[0]["type"] if findings else NORMAL_LABEL,
            "findings": findings,
            "measurements": {} if np.isnan(ctr[k]) else {"ctr": round(float(ctr[k]), 3)},
            "style": site.style,
        }
        u = plan.text[k].tolist()
        style = REPORT_STYLES[site.style]
        record["report"] = write_report(record, style, u)
        record["caption"] = write_caption(record, style, u)
        record["qa"] = write_qa(record, u)
        records.append(record)
    return records


def generate_studies(
    config: SynthRadConfig,
    indices: Iterable[int] | None = None,
    *,
    render_findings: bool = True,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Generate studies in memory.

    Returns images uint8 ``[N, S, S]`` (S = ``config.image_size``) and one ground-truth dict per
    study (index, image_id, site, held_out, split, family, modality, organ, plane, label,
    findings with type/side/region/size/size_mm/count/bbox, measurements, style, report,
    caption, qa). ``indices`` defaults to ``range(config.n_studies)``; any non-negative indices
    may be asked for, and study ``i`` is identical whichever others are generated with it.
    ``render_findings=False`` renders the same studies with the findings left out of the
    pixels (counterfactual twins; the ground truth still describes the findings).
    """
    idx = np.arange(config.n_studies) if indices is None else np.asarray(list(indices))
    if idx.ndim != 1 or (len(idx) and (idx.dtype.kind not in "iu" or idx.min() < 0)):
        raise ValueError("generate_studies: indices must be a flat sequence of integers >= 0.")
    idx = idx.astype(np.int64)
    n, size = block_size(config.image_size), config.image_size
    images = np.empty((len(idx), size, size), dtype=np.uint8)
    records: list[dict[str, Any]] = [{} for _ in range(len(idx))]
    if not len(idx):
        return images, records
    order = np.argsort(idx // n, kind="stable")
    blocks, starts = np.unique(idx[order] // n, return_index=True)
    canvas = Canvas(size, n)
    for block, members in zip(blocks, np.split(order, starts[1:]), strict=True):
        block_images, plan = render_block(config, int(block), render_findings, canvas)
        local = idx[members] - int(block) * n
        images[members] = block_images[local]
        for pos, record in zip(members, study_records(config, plan.subset(local)), strict=True):
            records[pos] = record
    return images, records
