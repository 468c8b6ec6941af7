"""Every HTML report, opened in headless Chromium at 1280 px and 390 px wide: nothing wider
than the window (wide tables scroll inside their own box), every figure loaded, the headline
verdicts before any figure or long table.

The pages come from the real report functions on small hand-made inputs (a long-labelled
robustness result of three tasks, an ablation of two settings, a GX validation run of a tiny
synthetic corpus, a benchmark with a published reference); the pipeline tests open the pages
of their Kedro runs the same way (``browser_support.assert_reads_well``).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from browser_support import assert_reads_well, needs_chromium

from robust_mmr_pipeline.reporting import ablation, references, robustness
from robust_mmr_pipeline.reporting.robustness import RESULT_COLUMNS

# ----------------------------------------------------------------------------- inputs

MODELS = ("ours", "from_scratch", "majority", "question_prior", "text_tfidf", "image_pixels")
TASK_METRICS = {
    "vqa": ("overall", "closed", "open"),
    "classification": ("accuracy",),
    "retrieval": ("t2i_r@1", "t2i_r@10", "i2t_r@1", "i2t_mean_rank", "t2i_mean_rank"),
}


def _row(task: str, model: str, condition: str, metric: str, value: float, **rest: Any) -> dict:
    interval = math.nan if metric == "n" else 0.04
    return {
        "task": task, "model": model, "condition": condition,
        "protocol": rest.get("protocol", condition if condition != "perturbed" else "in_domain"),
        "domain": rest.get("domain", ""), "modality": rest.get("modality", ""),
        "perturbation": rest.get("perturbation", ""), "severity": rest.get("severity", 0),
        "metric": metric, "value": value, "ci_low": value - interval, "ci_high": value + interval,
    }  # fmt: skip


def robustness_results(protocol: str = "") -> pd.DataFrame:
    """Three tasks x six scorers: clean, per-domain and perturbed rows, paired differences."""
    rows = []
    for (task, metrics), (m, model) in itertools.product(TASK_METRICS.items(), enumerate(MODELS)):
        main = robustness.MAIN_METRIC[task]
        for condition, metric in itertools.product(("in_domain", "cross_domain"), metrics):
            value = 0.7 - 0.05 * m if "rank" not in metric else 3.0 + m
            extra = {"protocol": protocol} if protocol else {}
            rows.append(_row(task, model, condition, metric, value, **extra))
            if model == "ours" and metric == main:
                rows += [
                    _row(task, model, condition, f"diff_{main}_vs_{other}", 0.05 * k, **extra)
                    for k, other in enumerate(MODELS[1:], start=1)
                ]
        if protocol:
            continue
        for domain in ("chest", "abdomen", "head"):
            rows.append(_row(task, model, "domain", main, 0.6 - 0.05 * m, domain=domain))
        for (name, modality), severity in itertools.product(
            (("gaussian_noise", "image"), ("jpeg", "image"), ("typos", "text")), (1, 3)
        ):
            key = {"perturbation": name, "modality": modality, "severity": severity}
            rows.append(_row(task, model, "perturbed", main, 0.6 - 0.05 * severity, **key))
            rows.append(_row(task, model, "perturbed", f"drop_{main}", 0.05 * severity, **key))
    return pd.DataFrame(rows)[list(RESULT_COLUMNS)]


def robustness_page(tmp_path: Path) -> Path:
    results = robustness_results()
    severity = robustness.severity_table(results)
    figures = {
        "main metric against perturbation severity": (
            "robustness_severity.png",
            robustness.severity_figure(severity),
        ),
        "main metric per domain": ("robustness_domains.png", robustness.domain_figure(results)),
        "retrieval ranks": ("robustness_retrieval_ranks.png", robustness.retrieval_figure(results)),
    }
    context = {
        "backbone": "pre-trained tiny (data/06_models/pretrain/a_rather_long_checkpoint_path.pt)",
        "selected steps": "vqa: 40, classification: 40, retrieval: 40",
    }
    page = robustness.render_report(
        results, robustness.metrics_summary(results), context, figures, fmt="html"
    )
    path = tmp_path / "robustness_report.html"
    path.write_text(page, encoding="utf-8")
    return path


def ablation_page(tmp_path: Path) -> Path:
    settings = ("no_pretraining", "mmr", "robust_mmr")
    headlines = pd.DataFrame(
        [
            {"setting": s, "seed": k, "task": task, "metric": robustness.MAIN_METRIC[task],
             "condition": c, "value": 0.5 + 0.02 * i + 0.01 * k}
            for (i, s), k, task, c in itertools.product(
                enumerate(settings), range(3), ("vqa", "classification"),
                ("in_domain", "cross_domain", "perturbed"),
            )
        ]
    )  # fmt: skip
    summary = ablation.summarise_settings(headlines, list(settings))
    gaps = ablation.paired_gaps(headlines, "robust_mmr", "mmr")
    figure = ablation.ablation_figure(summary, list(settings))
    page = ablation.render_ablation_html(summary, gaps, {"grid": "3 settings x 3 seeds"}, figure)
    path = tmp_path / "ablation_report.html"
    path.write_text(page, encoding="utf-8")
    return path


def validation_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from robust_mmr_pipeline.params import parse
    from robust_mmr_pipeline.validation.config import ValidationParams
    from robust_mmr_pipeline.validation.images import check_images
    from robust_mmr_pipeline.validation.phi import scan_tables
    from robust_mmr_pipeline.validation.report import render_html
    from robust_mmr_pipeline.validation.run import validate_all
    from robust_mmr_pipeline.validation.synthetic import make_synthetic

    synthetic = make_synthetic(tmp_path / "synthetic", n_images=10)
    tables = dict(synthetic.tables)
    pairs = tables["pairs"].copy()
    # a long unbroken example record: the failure table must scroll, not widen the page
    pairs.loc[0, "text"] = "x" * 400
    tables["pairs"] = pairs
    checks = check_images(tables["images"], synthetic.roots, workers=1)
    monkeypatch.chdir(tmp_path)
    params = parse(
        ValidationParams,
        {"min_class_count": 100, "text_length": {"pairs.text": {"min": 1, "max": 300}}},
        "validation",
    )
    summary = validate_all(tables, checks, scan_tables(tables, {}, {}, {}), params)
    assert summary["warnings"] >= 1  # class_min_count: the headline lists it
    path = tmp_path / "validation_report.html"
    path.write_text(render_html(summary), encoding="utf-8")
    return path


def benchmark_page(tmp_path: Path) -> tuple[Path, str]:
    rows = references.reference_rows(
        {
            "published": [
                {"dataset": "vqa_rad", "model": "M3AE", "task": "vqa", "split": "official test",
                 "metrics": {"overall": 0.77, "open": 0.672, "closed": 0.835},
                 "source": "Chen et al., MICCAI 2022, https://arxiv.org/abs/2209.07098"}
            ]
        },
        {"sources": [{"kind": "vqa_rad"}]},
    )  # fmt: skip
    table = references.benchmark_table(
        [robustness_results(), robustness_results(protocol="as_released")], rows
    )
    markdown, page = references.benchmark_reports(table, rows, "Split counts: in_domain test.")
    path = tmp_path / "published_benchmark.html"
    path.write_text(page, encoding="utf-8")
    return path, markdown


# ----------------------------------------------------------------------------- tests


@needs_chromium
def test_robustness_report_reads_well_in_a_browser(tmp_path: Path) -> None:
    assert_reads_well(robustness_page(tmp_path), figures=3)


@needs_chromium
def test_ablation_report_reads_well_in_a_browser(tmp_path: Path) -> None:
    page = ablation_page(tmp_path)
    assert "robust_mmr − mmr" in page.read_text()  # the gap verdicts head the cards
    assert_reads_well(page, figures=1)


@needs_chromium
def test_validation_report_reads_well_in_a_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_reads_well(validation_page(tmp_path, monkeypatch), figures=0)


@needs_chromium
def test_published_benchmark_reads_well_in_a_browser(tmp_path: Path) -> None:
    page, _ = benchmark_page(tmp_path)
    assert_reads_well(page, figures=0)


def test_published_benchmark_has_models_as_rows_and_a_table_per_protocol(
    tmp_path: Path,
) -> None:
    _, markdown = benchmark_page(tmp_path)
    sections = markdown.split("\n## ")
    titles = [s.splitlines()[0] for s in sections[1:]]
    assert titles == ["Classification", "Retrieval", "VQA", *references.CONDITIONS.values(),
                      "Sources of the references"]  # fmt: skip
    released = next(s for s in sections if s.startswith(references.CONDITIONS["as_released"]))
    lines = [line for line in released.splitlines() if line.startswith("| ")]
    # header + one row per scorer + the reference, ours first and the reference beside it
    assert len(lines) == 1 + len(MODELS) + 1
    assert lines[1].startswith("| ours (pre-trained, fine-tuned) |")
    assert lines[2].startswith("| M3AE (published; reference at a different scale) | ")
    assert "vqa overall" in lines[0] and len(lines[0].split("|")) - 2 < 12
    # the headline card: our best row per protocol, the reference beside the as-released one
    vqa = next(s for s in sections if s.startswith("VQA"))
    assert "our best: ours (pre-trained, fine-tuned)" in vqa
    assert "our best, ours (pre-trained, fine-tuned), 0.700 vs M3AE 0.770" in vqa
    # the image-disjoint tables hold no published row
    for protocol in ("in_domain", "cross_domain"):
        part = next(s for s in sections if s.startswith(references.CONDITIONS[protocol]))
        assert "M3AE" not in part
