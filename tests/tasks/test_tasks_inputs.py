"""Split encoding of evaluation sets equals row-by-row prediction; perturbations are shared."""

from __future__ import annotations

from pathlib import Path

import torch
from tasks_test_support import MAX_LENGTH, build_cache, tiny_config, tiny_tokenizer, vqa_rows

from robust_mmr_pipeline.tasks import ImagePerturbation, TaskCollator, TaskModel, TextPerturbation
from robust_mmr_pipeline.tasks.inputs import EvalInputs, classifier_logits


def _model(tokenizer) -> TaskModel:
    torch.manual_seed(0)
    config = tiny_config("mmr", vocab_size=len(tokenizer))
    return TaskModel.from_scratch(config, "vqa", label_names=["no", "yes", "left", "right"]).eval()


def test_split_encoding_matches_row_by_row_predict(tmp_path: Path) -> None:
    cache, left, ids = build_cache(tmp_path, 6)
    rows = vqa_rows(ids, left)  # two questions per image: images are shared across rows
    tokenizer = tiny_tokenizer()
    model = _model(tokenizer)
    inputs = EvalInputs.from_rows(rows, cache, text_column="question")
    assert len(inputs.image_ids) == 6 and inputs.num_rows == 12
    split = classifier_logits(model, inputs, tokenizer, MAX_LENGTH, batch_size=5)
    batch = TaskCollator(tokenizer, MAX_LENGTH)(
        [
            {"pixel_values": cache.tensor(i), "text": q, "domain_id": 0, "index": k}
            for k, (i, q) in enumerate(zip(rows["image_id"], rows["question"], strict=True))
        ]
    )
    with torch.no_grad():
        direct = model.predict(batch)
    torch.testing.assert_close(split, direct, atol=1e-5, rtol=1e-4)


def test_perturbation_is_per_image_and_per_row(tmp_path: Path) -> None:
    cache, left, ids = build_cache(tmp_path, 4)
    rows = vqa_rows(ids, left)
    image_p = ImagePerturbation("gaussian_noise", 3, seed=7)
    clean = EvalInputs.from_rows(rows, cache, text_column="question")
    noisy = EvalInputs.from_rows(rows, cache, text_column="question", image_perturbation=image_p)
    again = EvalInputs.from_rows(rows, cache, text_column="question", image_perturbation=image_p)
    assert not torch.equal(clean.images, noisy.images)
    torch.testing.assert_close(noisy.images, again.images)  # seeded: the same set every time
    pixels = noisy.row_pixels()
    # both questions about one image see the same corrupted image
    torch.testing.assert_close(pixels[0], pixels[1])
    text_p = TextPerturbation("typos", 5, seed=3)
    typed = EvalInputs.from_rows(rows, cache, text_column="question", text_perturbation=text_p)
    assert typed.texts != clean.texts
    assert torch.equal(typed.images, clean.images)
