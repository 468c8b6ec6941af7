"""Behavioural checks that fail when learning breaks: every task memorises a fixed batch.

A model that cannot drive its training accuracy on one fixed batch to 100 % has a bug (a
detached head, a wrong label mapping, a dead learning rate); these run the real TaskModel,
optimizer groups and losses on the tiny configuration, seeded, in a few seconds.
"""

from __future__ import annotations

from pathlib import Path

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

from robust_mmr_pipeline.tasks import (
    ClassificationDataset,
    RetrievalPairDataset,
    TaskCollator,
    TaskModel,
    VQADataset,
    answer_vocabulary,
    label_vocabulary,
)
from robust_mmr_pipeline.tasks.retrieval import itm_log_odds

STEPS = 80


def _memorise(model: TaskModel, batch: dict, steps: int = STEPS) -> tuple[list[float], list[float]]:
    optimizer = torch.optim.AdamW(model.param_groups(0.0, 1.0, 2e-3))
    accuracies, losses = [], []
    for _ in range(steps):
        output = model(batch)
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        accuracies.append(output.metrics.get("acc", output.metrics.get("itm_acc", 0.0)))
        losses.append(float(output.loss.detach()))
    return accuracies, losses


@pytest.mark.parametrize("task", ["vqa", "classification"])
def test_classifier_tasks_memorise_a_fixed_batch(task: str, tmp_path: Path) -> None:
    cache, left, ids = build_cache(tmp_path, 8)
    tokenizer = tiny_tokenizer()
    if task == "vqa":
        # the answer depends on the question AND the image (yes/no vs left/right): only a
        # working fusion of both streams fits all 16 rows
        rows = vqa_rows(ids, left)
        vocab = answer_vocabulary(rows)
        dataset = VQADataset(rows, cache, vocab)
    else:
        labels = ["left" if x else "right" for x in left]
        rows = pd.DataFrame(
            {"image_id": ids, "text": [caption(bool(x)) for x in left], "label": labels}
        )
        vocab = label_vocabulary(rows)
        dataset = ClassificationDataset(rows, cache, vocab)
    torch.manual_seed(0)
    model = TaskModel.from_scratch(
        tiny_config(vocab_size=len(tokenizer)),
        task,
        label_names=sorted(vocab, key=vocab.__getitem__),
    )
    batch = TaskCollator(tokenizer, MAX_LENGTH)([dataset[i] for i in range(len(dataset))])
    accuracies, losses = _memorise(model, batch)
    assert losses[-1] < 0.2 * losses[0]
    assert accuracies[-1] == 1.0, accuracies[-10:]


def test_retrieval_memorises_a_fixed_batch(tmp_path: Path) -> None:
    cache, left, ids = build_cache(tmp_path, 16)
    tokenizer = tiny_tokenizer()
    pairs = pd.DataFrame({"image_id": ids, "text": [caption(bool(x)) for x in left]})
    dataset = RetrievalPairDataset(pairs, cache)
    torch.manual_seed(0)
    model = TaskModel.from_scratch(tiny_config(vocab_size=len(tokenizer)), "retrieval")
    batch = TaskCollator(tokenizer, MAX_LENGTH)([dataset[i] for i in range(16)])
    _, losses = _memorise(model, batch, steps=120)
    assert losses[-1] < 0.5 * losses[0]
    # The ITM head separates every matching (image, caption) pair from every mismatched one.
    # Scored on all 16 x 16 pairs in eval mode, not on one step's sampled negatives: a step's
    # accuracy over ~32 pairs moves by 1/32 per pair and sits near any threshold on some CPU.
    model.eval()
    n = len(ids)
    with torch.no_grad():
        logits = model.predict(
            {
                "pixel_values": batch["pixel_values"].repeat_interleave(n, dim=0),
                "input_ids": batch["input_ids"].repeat(n, 1),
                "attention_mask": batch["attention_mask"].repeat(n, 1),
            }
        )
    odds = itm_log_odds(logits).view(n, n)  # [image, text]
    side = torch.as_tensor(left)
    matching = side[:, None] == side[None, :]
    auc = (odds[matching][:, None] > odds[~matching][None, :]).float().mean()
    assert auc == 1.0, f"AUC of matching vs mismatched pairs {float(auc):.3f}"
