"""Evaluation that scales: cached encodings score perturbed sets exactly as direct scoring does,
and the per-question pixel baseline keeps its own models for frequent questions only."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from robust_mmr_pipeline.baselines.fit import fit_baselines, normalize_question
from robust_mmr_pipeline.baselines.pixels import QuestionPixelModel, shared_design
from robust_mmr_pipeline.recipes import pretrain as pretrain_recipe
from robust_mmr_pipeline.recipes.evaluate import TaskEvaluator, perturbation_pair
from robust_mmr_pipeline.recipes.evaluation_clock import StageClock
from robust_mmr_pipeline.recipes.evaluation_run import OURS, score_set
from robust_mmr_pipeline.sources.synthrad import SynthRadConfig, write_synthrad
from robust_mmr_pipeline.tasks import TaskModel
from robust_mmr_pipeline.tasks.inputs import EvalInputs, classifier_logits

TINY_MODEL = {
    "vision": {"image_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2},
    "text": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64,
             "max_length": 24},
    "fusion": {"hidden_size": 32, "num_layers": 1, "num_heads": 2},
    "decoder": {"hidden_size": 32, "depth": 1, "num_heads": 2},
}  # fmt: skip
PERTURBATIONS = (
    {"modality": "image", "perturbation": "gaussian_noise", "severity": 3, "seed": 7},
    {"modality": "text", "perturbation": "typos", "severity": 5, "seed": 3},
)


@pytest.fixture(scope="module")
def synthrad(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("synthrad")
    tables = write_synthrad(SynthRadConfig(n_studies=16, image_size=32, seed=1), root / "raw")
    cache = pretrain_recipe.build_image_cache(
        tables.images, {"synthrad": str(root / "raw")}, str(root / "cache"),
        image_size=32, channels=1, resize_mode="pad", workers=0,
    )  # fmt: skip
    tokenizer = pretrain_recipe.fit_tokenizer(tables.pairs["text"].tolist(), 300, 1, 24)
    config = pretrain_recipe.build_model_config("mmr", "small", TINY_MODEL, tokenizer)
    vqa = tables.vqa.merge(tables.images[["image_id", "domain", "modality"]], on="image_id")
    pairs = tables.pairs.merge(tables.images[["image_id", "modality"]], on="image_id")
    return {"cache": cache["cache_dir"], "tokenizer": tokenizer, "config": config, "vqa": vqa,
            "pairs": pairs}  # fmt: skip


def _evaluator(synthrad: dict, task: str, labels: list[str] | None = None) -> TaskEvaluator:
    torch.manual_seed(0)
    model = TaskModel.from_scratch(synthrad["config"], task, label_names=labels or ()).eval()
    return TaskEvaluator(task, "", synthrad["cache"], synthrad["tokenizer"], batch_size=7,
                         n_boot=50, model=model)  # fmt: skip


def test_cached_encodings_score_perturbed_vqa_sets_as_direct_scoring(synthrad: dict) -> None:
    rows = synthrad["vqa"]
    answers = sorted(set(rows["answer"].str.lower()))
    evaluator = _evaluator(synthrad, "vqa", answers)
    evaluators = {OURS: evaluator}
    _clean, cache = score_set("vqa", evaluators, [], rows, None)
    for perturbation in PERTURBATIONS:
        cached, _ = score_set("vqa", evaluators, [], rows, perturbation, clean=cache)
        # the path evaluation took before the cache: inputs read and perturbed, encoded whole
        image_p, text_p = perturbation_pair(perturbation)
        inputs = EvalInputs.from_rows(
            rows, evaluator.cache, text_column="question", image_perturbation=image_p,
            text_perturbation=text_p,
        )  # fmt: skip
        logits = classifier_logits(evaluator.model, inputs, evaluator.tokenizer,
                                   evaluator.max_length, evaluator.batch_size)  # fmt: skip
        np.testing.assert_array_equal(cached[OURS][1], logits.argmax(-1).numpy())
        direct, _items = evaluator.evaluate(rows, perturbation)
        assert evaluator.metrics(rows, cached[OURS][1])[0] == direct
    # the unperturbed modality is reused, not recomputed
    _, image_cache = score_set("vqa", evaluators, [], rows, PERTURBATIONS[0], cache)
    assert image_cache.encoded[OURS].texts is cache.encoded[OURS].texts
    _, text_cache = score_set("vqa", evaluators, [], rows, PERTURBATIONS[1], cache)
    assert text_cache.encoded[OURS].images is cache.encoded[OURS].images


def test_cached_encodings_rank_perturbed_retrieval_sets_as_direct_scoring(synthrad: dict) -> None:
    pairs = synthrad["pairs"]
    evaluator = _evaluator(synthrad, "retrieval")
    evaluators = {OURS: evaluator}
    _clean, cache = score_set("retrieval", evaluators, [], pairs, None)
    for perturbation in PERTURBATIONS:
        cached, _ = score_set("retrieval", evaluators, [], pairs, perturbation, clean=cache)
        direct, _items = evaluator.evaluate(pairs, perturbation)
        metrics, _ = evaluator.metrics(pairs, cached[OURS][1])
        assert {k: v for k, v in metrics.items() if k != "seconds"} == {
            k: v for k, v in direct.items() if k != "seconds"
        }


def _inputs(keys: list[str], images: torch.Tensor) -> EvalInputs:
    return EvalInputs(images, torch.arange(len(keys)), list(keys), [str(i) for i in keys])


def test_rare_questions_fall_back_to_the_shared_model_without_warnings() -> None:
    rng = np.random.default_rng(0)

    def rows(n_frequent: int, n_rare: int) -> tuple[list[str], torch.Tensor, np.ndarray]:
        # "is it bright": 2 answers read off the pixels; "what is shown": 16 answers over 30
        # rows (more than half as many answers as rows); a few questions asked twice
        keys = ["is it bright?"] * n_frequent + ["what is shown?"] * 30
        keys += [f"rare question {i}?" for i in range(n_rare) for _ in range(2)]
        bright = rng.random(len(keys)) < 0.5
        images = torch.from_numpy(rng.random((len(keys), 1, 8, 8)) * 0.2 + 0.7 * bright[:, None,
                                  None, None]).float()  # fmt: skip
        labels = np.where(bright, 0, 1)
        labels[n_frequent : n_frequent + 30] = 2 + np.arange(30) % 16
        return keys, images, labels

    keys, images, labels = rows(80, 10)
    val_keys, val_images, val_labels = rows(40, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scikit-learn warning (classes, convergence)
        fitted = fit_baselines("vqa", _inputs(keys, images), labels,
                               _inputs(val_keys, val_images), val_labels,
                               names=["image_pixels", "text_tfidf"], seed=0)  # fmt: skip
    model = fitted.models["image_pixels"]
    assert isinstance(model, QuestionPixelModel)
    assert set(model.per_key) == {"is it bright"}  # the only frequent, learnable question
    assert model.shared is not None and fitted.chosen["image_pixels_own_models"] == 1
    test = _inputs(val_keys, val_images)
    features = fitted.features(test)
    predicted = fitted.predict(test, features)["image_pixels"]
    rare = np.array([normalize_question(k) != "is it bright" for k in val_keys])
    design = shared_design(features.pixels, features.tfidf)
    np.testing.assert_array_equal(predicted[rare], model.shared.predict(design[rare]))
    own = model.per_key["is it bright"].predict(features.pixels[~rare])
    np.testing.assert_array_equal(predicted[~rare], own)
    assert np.mean(predicted[~rare] == val_labels[~rare]) > 0.9  # brightness is easy
    # a text-perturbed set recomputes only the text side; the pixels are the clean ones
    noisy = _inputs([k.upper() + " x" for k in val_keys], val_images)
    again = fitted.features(noisy, like=features, perturbed="text")
    assert again.pixels is features.pixels and again.keys != features.keys
    assert fitted.reads("text_tfidf") == {"text"} and fitted.reads("majority") == set()


def test_stage_clock_counts_inner_stages_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from robust_mmr_pipeline.recipes import evaluation_clock

    ticks = iter([0.0, 1.0, 3.0, 10.0])  # outer opens, inner opens, inner closes, outer closes
    monkeypatch.setattr(evaluation_clock.time, "perf_counter", lambda: next(ticks))
    clock = StageClock()
    with clock.stage("vqa", "outer"), clock.stage("vqa", "inner"):
        pass
    table = {(r["task"], r["stage"]): r["seconds"] for r in clock.table()}
    assert table == {("vqa", "inner"): 2.0, ("vqa", "outer"): 8.0}
