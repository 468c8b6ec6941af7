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
``image_pixels``       VQA: one logistic regression on downsampled pixels per FREQUENT
                       question text (``min_rows`` train rows, chosen on val; its single
                       answer where it has one), one shared regression on the pixels and
                       the question's TF-IDF for every other row (baselines/pixels.py);
                       classification: logistic regression on the pixels alone
``chance``             retrieval: a seeded random ranking
``tfidf_pixels_cca``   retrieval: CCA between TF-IDF text and pixel PCA, cosine ranking
=====================  ============================================================

Cost is bounded on a real release: the TF-IDF vocabulary and the pixel PCA are fitted once and
every set's features computed once (a perturbed set recomputes its perturbed modality only);
each regression walks up its ``C`` grid with warm starts.

The same architecture trained from scratch (no pre-training) is the fine-tuning pipeline's
``from_scratch`` run, scored by the evaluation pipeline like the model. Fitting and scoring:
:func:`robust_mmr_pipeline.baselines.fit.fit_baselines` (imports scikit-learn and torch).
"""

from robust_mmr_pipeline.baselines.registry import BASELINE_LABELS, BASELINES

__all__ = ["BASELINES", "BASELINE_LABELS"]
