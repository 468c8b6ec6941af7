"""The task registry: one record per downstream task, the one place that knows how they differ.

Every other module asks a :class:`TaskSpec` (``TASK_SPECS[name]`` or :func:`task_spec`) instead
of comparing task names: which table holds its rows, which column its model reads, whether it
has a classifier head or ranks with the backbone's ITM head, its answer / label vocabulary, its
dataset class and its main and selection metrics.

Importing this module imports no torch (the pipeline registry and the parameter checks read it
when Kedro starts); the dataset classes, which need torch, are resolved on use.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import pandas as pd

TaskName = Literal["vqa", "classification", "retrieval"]
TASKS: tuple[str, ...] = get_args(TaskName)


@dataclass(frozen=True)
class TaskSpec:
    """What one task is.

    * ``table``: the ingestion table holding its rows (retrieval reads the image-text
      ``pairs``, filtered by ``finetune.text_kinds``).
    * ``head``: ``"classifier"`` (a new head over the fused feature, one class per answer /
      label) or ``"itm"`` (ranking with the backbone's ITM head and contrastive embeddings).
    * ``text_column`` / ``label_column``: what the model reads and what it predicts (None: no
      classes).
    * ``answers``: the labels are free-text answers (normalised, with closed / open answer
      types; the ``vqa_loss`` option and the per-question pixel baseline apply).
    * ``dataset``: ``module:Class`` of its dataset in :mod:`.data` (a dotted path: that module
      imports torch, this one must not).
    * ``main_metric``: reported (reports, severity table, label efficiency);
      ``selection_metric``: picks the best validation checkpoint.
    * ``source_hint``: what a configured source must give for it (data requirement messages).
    * ``headline_extra``: metrics shown beside the main one in the report's headline card.
    """

    name: str
    title: str
    table: str
    head: Literal["classifier", "itm"]
    text_column: str
    label_column: str | None
    answers: bool
    dataset: str
    main_metric: str
    selection_metric: str
    source_hint: str
    headline_extra: tuple[str, ...] = ()

    @property
    def classifies(self) -> bool:
        """A classifier head over the fused feature (vocabulary from the train rows)."""
        return self.head == "classifier"

    @property
    def ranks(self) -> bool:
        """Ranking by the backbone's ITM head (no classes; inputs tokenised per model)."""
        return self.head == "itm"

    def dataset_class(self) -> type:
        module, _, name = self.dataset.partition(":")
        return getattr(importlib.import_module(module), name)

    def make_dataset(self, rows: pd.DataFrame, cache: Any, label_names: Sequence[str]) -> Any:
        """The task dataset of ``rows`` (class indices in the order of ``label_names``)."""
        if not self.classifies:
            return self.dataset_class()(rows, cache)
        vocabulary = {name: index for index, name in enumerate(label_names)}
        return self.dataset_class()(rows, cache, vocabulary)

    def vocabulary(self, train_rows: pd.DataFrame, min_count: int = 1) -> list[str]:
        """Class names in index order, from TRAIN rows only (empty without classes)."""
        from robust_mmr_pipeline.tasks.data import answer_vocabulary, label_vocabulary

        if not self.classifies:
            return []
        if "split" in train_rows.columns and set(train_rows["split"].astype(str)) - {"train"}:
            raise ValueError("the vocabulary must come from train rows only")
        if self.answers:
            vocab = answer_vocabulary(train_rows, min_count=min_count)
        else:
            vocab = label_vocabulary(train_rows)
        return sorted(vocab, key=vocab.__getitem__)


_DATA = "robust_mmr_pipeline.tasks.data"
TASK_SPECS: dict[str, TaskSpec] = {
    "vqa": TaskSpec(
        name="vqa",
        title="VQA",
        table="vqa",
        head="classifier",
        text_column="question",
        label_column="answer",
        answers=True,
        dataset=f"{_DATA}:VQADataset",
        main_metric="overall",
        selection_metric="overall",
        source_hint="a VQA source",
        headline_extra=("closed",),
    ),
    "classification": TaskSpec(
        name="classification",
        title="Classification",
        table="classification",
        head="classifier",
        text_column="text",
        label_column="label",
        answers=False,
        dataset=f"{_DATA}:ClassificationDataset",
        main_metric="accuracy",
        selection_metric="accuracy",
        source_hint="a source with labels (csv label_column)",
    ),
    "retrieval": TaskSpec(
        name="retrieval",
        title="Retrieval",
        table="pairs",
        head="itm",
        text_column="text",
        label_column=None,
        answers=False,
        dataset=f"{_DATA}:RetrievalPairDataset",
        main_metric="t2i_r@1",
        selection_metric="rsum",
        source_hint="a source with image-text pairs",
        headline_extra=("t2i_r@10",),
    ),
}
assert tuple(TASK_SPECS) == TASKS  # the Literal and the records name the same tasks

CLASSIFICATION_TASKS: tuple[str, ...] = tuple(n for n, s in TASK_SPECS.items() if s.classifies)
MAIN_METRIC: dict[str, str] = {n: s.main_metric for n, s in TASK_SPECS.items()}
SELECTION_METRIC: dict[str, str] = {n: s.selection_metric for n, s in TASK_SPECS.items()}


def task_spec(name: str) -> TaskSpec:
    """The record of task ``name``; ValueError naming the tasks for an unknown one."""
    try:
        return TASK_SPECS[name]
    except KeyError:
        raise ValueError(f"task must be one of {TASKS}, got {name!r}") from None
