"""Task datasets, vocabularies and the collator (with seeded on-the-fly perturbations)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from tasks_test_support import (
    IMAGE_SIZE,
    MAX_LENGTH,
    build_cache,
    caption,
    tiny_tokenizer,
    vqa_rows,
)

from robust_mmr_pipeline.tasks import (
    OOV_LABEL,
    ClassificationDataset,
    ImagePerturbation,
    RetrievalPairDataset,
    TaskCollator,
    TextPerturbation,
    VQADataset,
    answer_vocabulary,
    label_vocabulary,
)


def test_vqa_dataset_labels_oov_and_answer_types(tmp_path: Path) -> None:
    cache, left, ids = build_cache(tmp_path, 6)
    rows = vqa_rows(ids, left)
    train = rows.iloc[:8].assign(split="train")
    vocab = answer_vocabulary(train)
    assert set(vocab) == {"yes", "no", "left", "right"}  # "Yes" normalised
    with pytest.raises(ValueError, match="training rows only"):
        answer_vocabulary(rows.assign(split=["train"] * 10 + ["test"] * 2))
    test = rows.copy()
    test.loc[0, "answer"] = "maybe"  # unseen in training
    dataset = VQADataset(test, cache, vocab)
    assert dataset.num_out_of_vocabulary == 1
    collate = TaskCollator(tiny_tokenizer(), max_length=MAX_LENGTH)
    batch = collate([dataset[i] for i in range(4)])
    assert batch["pixel_values"].shape == (4, 1, IMAGE_SIZE, IMAGE_SIZE)
    assert batch["pixel_values"].dtype == torch.float32 and float(batch["pixel_values"].max()) <= 1
    assert batch["input_ids"].shape == (4, MAX_LENGTH)
    assert batch["labels"].tolist() == [OOV_LABEL, vocab["left"], vocab["no"], vocab["right"]]
    assert batch["answer_type_ids"].tolist() == [0, 1, 0, 1]  # closed 0, open 1
    assert batch["domain_ids"].tolist() == [0, 1, 0, 1]
    assert batch["indices"].tolist() == [0, 1, 2, 3]


def test_classification_and_retrieval_datasets(tmp_path: Path) -> None:
    cache, left, ids = build_cache(tmp_path, 4)
    rows = pd.DataFrame(
        {
            "image_id": ids,
            "text": [caption(bool(x)) for x in left],
            "label": ["left" if x else "right" for x in left],
        }
    )
    vocab = label_vocabulary(rows.iloc[:3])
    assert vocab == {"left": 0, "right": 1}
    relabelled = rows.assign(label=["left", "right", "left", "middle"])
    dataset = ClassificationDataset(relabelled, cache, vocab)
    assert dataset.labels == [0, 1, 0, OOV_LABEL]
    pairs = pd.DataFrame({"image_id": [ids[0], ids[1], ids[0]], "text": ["a", "b", "a"]})
    retrieval = RetrievalPairDataset(pairs, cache)
    batch = TaskCollator(tiny_tokenizer(), MAX_LENGTH)([retrieval[i] for i in range(3)])
    assert batch["group_ids"].tolist() == [0, 1, 0]
    assert batch["text_group_ids"].tolist() == [0, 1, 0]


def test_perturbations_are_seeded_per_item(tmp_path: Path) -> None:
    cache, left, ids = build_cache(tmp_path, 6)
    dataset = VQADataset(vqa_rows(ids, left), cache, {"yes": 0, "no": 1})
    tokenizer = tiny_tokenizer()
    noise = ImagePerturbation("gaussian_noise", 3, seed=7)  # the perturbation library
    typos = TextPerturbation("word_dropout", 5, seed=7)
    perturbed = TaskCollator(
        tokenizer, MAX_LENGTH, image_perturbation=noise, text_perturbation=typos
    )
    clean = TaskCollator(tokenizer, MAX_LENGTH)
    items = [dataset[i] for i in range(6)]
    full = perturbed(items)
    assert not torch.equal(full["pixel_values"], clean(items)["pixel_values"])
    assert float(full["pixel_values"].min()) >= 0 and float(full["pixel_values"].max()) <= 1
    # the same sample gets the same perturbation whatever its batch and position
    reordered = perturbed([items[5], items[2]])
    torch.testing.assert_close(reordered["pixel_values"][0], full["pixel_values"][5])
    torch.testing.assert_close(reordered["pixel_values"][1], full["pixel_values"][2])
    torch.testing.assert_close(reordered["input_ids"][0], full["input_ids"][5])
    assert not torch.equal(full["input_ids"], clean(items)["input_ids"])
    # another seed draws differently; a custom function is accepted
    reseeded = ImagePerturbation("gaussian_noise", 3, seed=8)
    other = TaskCollator(tokenizer, MAX_LENGTH, image_perturbation=reseeded)(items)
    assert not torch.equal(other["pixel_values"], full["pixel_values"])
    invert = ImagePerturbation("invert", 1, fn=lambda x, name, severity, generator: 1.0 - x)
    inverted = TaskCollator(tokenizer, MAX_LENGTH, image_perturbation=invert)(items)
    torch.testing.assert_close(inverted["pixel_values"], 1.0 - clean(items)["pixel_values"])
    with pytest.raises(ValueError):
        ImagePerturbation("gaussian_noise", 6)
