"""Trivial references computed on the same rows as the model: priors, text-only, image-only.

A model number means something only next to what a few lines of scikit-learn get on the same
train / test rows (METHOD.md, evaluation protocol). Every baseline here is fitted on the TRAIN
rows of a task (hyper-parameters, where any, chosen on the VAL rows) and scores exactly the
:class:`~robust_mmr_pipeline.tasks.inputs.EvalInputs` the model scores, clean or perturbed.

=====================  ============================================================
``majority``           the most frequent train answer / label
``question_prior``     VQA: the most frequent train answer of the same question text
                       (majority for an unseen question)
``text_tfidf``         TF-IDF of the question / text + logistic regression
``image_pixels``       VQA: one logistic regression on downsampled pixels per question
                       text (the question prior where a question has one train answer);
                       classification: logistic regression on the pixels alone
``chance``             retrieval: a seeded random ranking
``tfidf_pixels_cca``   retrieval: CCA between TF-IDF text and pixel PCA, cosine ranking
=====================  ============================================================

The same architecture trained from scratch (no pre-training) is the fine-tuning pipeline's
``from_scratch`` run, scored by the evaluation pipeline like the model. Fitting and scoring:
:func:`robust_mmr_pipeline.baselines.fit.fit_baselines` (imports scikit-learn and torch).
"""

from robust_mmr_pipeline.baselines.registry import BASELINE_LABELS, BASELINES

__all__ = ["BASELINES", "BASELINE_LABELS"]
