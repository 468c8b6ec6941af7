"""Descriptive summaries for the report: per-domain counts, class balance, vocabulary, leaks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from robust_mmr_pipeline.validation.config import ValidationParams
from robust_mmr_pipeline.validation.frames import Frame, image_sources


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts(dropna=False).sort_index().items()}


def _nested(frame: pd.DataFrame, outer: str, inner: str) -> dict[str, dict[str, int]]:
    """``{outer value: {inner value: rows}}``."""
    if frame.empty or not {outer, inner} <= set(frame.columns):
        return {}
    table = frame.groupby([outer, inner], dropna=False, sort=True).size()
    result: dict[str, dict[str, int]] = {}
    for (a, b), n in table.items():
        result.setdefault(str(a), {})[str(b)] = int(n)
    return result


def _with_source(images: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["source"] = image_sources(images, frame)
    return out


def _answer_vocabulary(vqa: pd.DataFrame) -> dict[str, dict[str, Any]]:
    if vqa.empty or not {"_in_train_vocab", "answer", "split"} <= set(vqa.columns):
        return {}
    result = {}
    for source, group in vqa.groupby("source", sort=True):
        evaluated = group["_in_train_vocab"].dropna()
        train = group.loc[group["split"].eq("train").fillna(False), "answer"]
        oov = int((~evaluated.astype(bool)).sum())
        result[str(source)] = {
            "train_answers": int(train.nunique()),
            "eval_rows": len(evaluated),
            "out_of_vocabulary_rows": oov,
            "out_of_vocabulary_rate": round(oov / len(evaluated), 4) if len(evaluated) else 0.0,
        }
    return result


def _class_balance(counts: pd.DataFrame, classification: pd.DataFrame) -> dict[str, Any]:
    if classification.empty:
        return {}
    per_source: dict[str, Any] = {}
    for source, group in classification.groupby("source", sort=True):
        labels = _nested(group, "label", "split")
        mine = counts[counts["source"] == source]
        trainable = mine["trainable"][mine["trainable"] > 0]
        per_source[str(source)] = {
            "labels": labels,
            "n_labels": len(labels),
            "imbalance_ratio": round(float(trainable.max() / trainable.min()), 2)
            if len(trainable)
            else None,
        }
    return per_source


def _split_overlap(overlap: pd.DataFrame) -> dict[str, dict[str, Any]]:
    result = {}
    for source, group in overlap.groupby("source", sort=True):
        promised = bool(group["promised"].iloc[0])
        result[str(source)] = {
            "images_with_split": len(group),
            "images_in_several_splits": int(group["leaked"].sum()),
            "promised_disjoint": promised,
            "check": "split_overlap" if promised else "split_overlap_by_design",
        }
    return result


def _image_files(files: pd.DataFrame) -> dict[str, Any]:
    if files.empty:
        return {"checked": 0}
    decoded = files[files["decodes"].fillna(False).astype(bool)]
    return {
        "checked": len(files),
        "missing": int((~files["exists"].astype(bool)).sum()),
        "outside_root": int((~files["in_root"].dropna().astype(bool)).sum())
        if "in_root" in files.columns
        else 0,
        "undecodable": int((~files["decodes"].dropna().astype(bool)).sum()),
        "modes": _counts(files["mode"].dropna()),
        "width": _stats(decoded["width"]),
        "height": _stats(decoded["height"]),
        "bytes": _stats(files["bytes"].dropna()),
    }


def _stats(values: pd.Series) -> dict[str, float] | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return None
    return {
        "min": float(values.min()),
        "median": float(values.median()),
        "max": float(values.max()),
    }


def summarise(frames: Mapping[str, Frame], params: ValidationParams) -> dict[str, Any]:
    """Counts a reader of the report wants next to the checks.

    ``images_per_source_domain`` / ``images_per_source_modality`` (the domain key a split
    groups by), ``rows_per_source_split`` (vqa and classification), ``class_balance`` (labels
    x split per source, with the max/min ratio of trainable rows), ``answer_vocabulary``
    (train answers and out-of-vocabulary val/test rows per source), ``split_overlap`` (per
    source), ``pairs_per_kind``, ``rejects_per_reason`` and ``image_files``.
    """
    images = frames["images"].data
    vqa = _with_source(images, frames["vqa"].data)
    classification = _with_source(images, frames["classification"].data)
    pairs = frames["pairs"].data
    rejects = frames["rejects"].data
    return {
        "images_per_source_domain": _nested(images, "source", "domain"),
        "images_per_source_modality": _nested(images, "source", "modality"),
        "rows_per_source_split": {
            "vqa": _nested(vqa, "source", "split"),
            "classification": _nested(classification, "source", "split"),
        },
        "class_balance": _class_balance(frames["class_counts"].data, classification),
        "answer_types": _nested(vqa, "source", "answer_type"),
        "answer_vocabulary": _answer_vocabulary(vqa),
        "answer_vocab_scope": params.answer_vocab_scope,
        "split_overlap": _split_overlap(frames["split_overlap"].data),
        "pairs_per_kind": _nested(pairs, "text_kind", "style"),
        "rejects_per_reason": _nested(rejects, "source", "reason"),
        "image_files": _image_files(frames["image_files"].data),
    }
