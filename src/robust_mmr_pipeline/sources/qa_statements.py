"""QA-statement pairs: the one place where VQA records become image–text pairs.

Any source with a ``vqa`` table (VQA-RAD, SLAKE, VQA-Med 2019, a CSV with question / answer
columns) can be pre-trained on and can fit the tokenizer through these pairs, even when it has
no report or caption: :func:`with_qa_statements` is applied to every published source by the
registry (:func:`robust_mmr_pipeline.sources.registry.read_source`), switched per source by
``ingestion.sources[].qa_statements`` (default on). Readers never build them themselves.

Only TRAINING records are turned into statements (split ``train``, and ``unassigned`` records,
which follow their image to a split later exactly like the statement does): a statement holds
its answer, and pre-training on a val / test answer would leak it. Each statement is
``qa_statement(question, answer, answer_type)`` of the normalised record
(:func:`~robust_mmr_pipeline.sources.answers.qa_statement`), with pair_id ``<qid>:qa``, the
record's image, text_kind ``qa_statement`` and the source name as style.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from robust_mmr_pipeline.schema import SourceTables, concat, conform, empty
from robust_mmr_pipeline.sources.answers import qa_statement

TEXT_KIND = "qa_statement"
# Splits whose records become statements (val / test answers must not reach pre-training).
STATEMENT_SPLITS: tuple[str, ...] = ("train", "unassigned")
PAIR_SUFFIX = ":qa"


def qa_statement_pairs(vqa: pd.DataFrame, style: str) -> pd.DataFrame:
    """The ``pairs`` rows (text_kind ``qa_statement``) of the training records of ``vqa``."""
    rows = vqa[vqa["split"].isin(STATEMENT_SPLITS)]
    if rows.empty:
        return empty("pairs")
    texts = [
        qa_statement(question, answer, answer_type)
        for question, answer, answer_type in zip(
            rows["question"], rows["answer"], rows["answer_type"], strict=True
        )
    ]
    frame = pd.DataFrame(
        {
            "pair_id": rows["qid"].astype(str) + PAIR_SUFFIX,
            "image_id": rows["image_id"].to_numpy(),
            "text": texts,
            "text_kind": TEXT_KIND,
            "style": style,
        }
    )
    return conform(frame, "pairs", origin=f"qa_statements({style})")


def with_qa_statements(tables: SourceTables, style: str) -> SourceTables:
    """``tables`` with the QA statements of its training VQA records added to ``pairs``."""
    statements = qa_statement_pairs(tables.vqa, style)
    if statements.empty:
        return tables
    return dataclasses.replace(tables, pairs=concat([tables.pairs, statements], "pairs"))
