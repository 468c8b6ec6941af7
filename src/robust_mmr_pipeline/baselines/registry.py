"""Names of the trivial baselines per task and their labels in reports (no heavy imports)."""

from __future__ import annotations

BASELINES: dict[str, tuple[str, ...]] = {
    "vqa": ("majority", "question_prior", "text_tfidf", "image_pixels"),
    "classification": ("majority", "text_tfidf", "image_pixels"),
    "retrieval": ("chance", "tfidf_pixels_cca"),
}
BASELINE_LABELS: dict[str, str] = {
    "majority": "majority answer / label",
    "question_prior": "answer prior per question text (no image)",
    "text_tfidf": "text only: TF-IDF + logistic regression",
    "image_pixels": (
        "image: logistic regression on pixels (VQA: one per frequent question text, one shared "
        "with the question's TF-IDF for the others)"
    ),
    "chance": "chance: random ranking",
    "tfidf_pixels_cca": "linear: CCA of TF-IDF text and pixel PCA",
    "from_scratch": "same architecture, no pre-training",
    "frozen_backbone": "pre-trained backbone, frozen (linear probe / zero-shot ITM)",
}
