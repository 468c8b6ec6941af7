"""The task registry, and every task x preset model the way timm tests its models: a forward
and a backward pass on a tiny batch, finite, every trainable parameter reached by a gradient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tasks_test_support import (
    MAX_LENGTH,
    build_cache,
    caption,
    tiny_config,
    tiny_tokenizer,
    vqa_rows,
)

from robust_mmr_pipeline.model import PRESETS
from robust_mmr_pipeline.tasks import TaskCollator, TaskModel
from robust_mmr_pipeline.tasks.registry import (
    MAIN_METRIC,
    TASK_SPECS,
    TASKS,
    TaskSpec,
    task_spec,
)


def test_registry_names_each_task_once_and_refuses_unknown_ones() -> None:
    assert tuple(TASK_SPECS) == TASKS and set(MAIN_METRIC) == set(TASKS)
    for name, spec in TASK_SPECS.items():
        assert spec.name == name and spec.classifies != spec.ranks
        assert (spec.label_column is None) == spec.ranks
    with pytest.raises(ValueError, match="task must be one of"):
        task_spec("segmentation")


def _rows(spec: TaskSpec, ids: list[str], left: np.ndarray) -> pd.DataFrame:
    if spec.answers:
        return vqa_rows(ids, left)
    rows = pd.DataFrame({"image_id": ids, spec.text_column: [caption(bool(x)) for x in left]})
    if spec.label_column is not None:
        rows[spec.label_column] = ["left" if x else "right" for x in left]
    return rows


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("task", TASKS)
def test_every_task_and_preset_trains(task: str, preset: str, tmp_path: Path) -> None:
    spec = task_spec(task)
    cache, left, ids = build_cache(tmp_path, 8)
    tokenizer = tiny_tokenizer()
    rows = _rows(spec, ids, left)
    labels = spec.vocabulary(rows)
    dataset = spec.make_dataset(rows, cache, labels)
    torch.manual_seed(0)
    model = TaskModel.from_scratch(
        tiny_config(preset, vocab_size=len(tokenizer)), task, label_names=labels
    )
    batch = TaskCollator(tokenizer, MAX_LENGTH)([dataset[i] for i in range(len(dataset))])
    output = model(batch)
    assert torch.isfinite(output.loss)
    output.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    for name, param in model.named_parameters():
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), name
