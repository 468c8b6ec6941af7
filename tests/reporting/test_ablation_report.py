"""The ablation comparison on hand-made evaluation results: headlines, intervals, gaps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from robust_mmr_pipeline.reporting import ablation as report
from robust_mmr_pipeline.reporting.robustness import RESULT_COLUMNS


def _results(clean: float, cross: float, perturbed: dict[tuple[str, int], float]) -> pd.DataFrame:
    rows = [
        ("vqa", "in_domain", "", 0, "overall", clean),
        ("vqa", "cross_domain", "", 0, "overall", cross),
        ("vqa", "in_domain", "", 0, "closed", 0.9),  # not a headline: not the main metric
    ]
    for (name, severity), value in perturbed.items():
        rows.append(("vqa", "perturbed", name, severity, "overall", value))
        rows.append(("vqa", "perturbed", name, severity, "drop_overall", clean - value))
    frame = pd.DataFrame(
        [
            {
                "task": task,
                "model": "ours",
                "condition": condition,
                "protocol": "",
                "domain": "",
                "modality": "image" if name else "",
                "perturbation": name,
                "severity": severity,
                "metric": metric,
                "value": value,
                "ci_low": value - 0.05,
                "ci_high": value + 0.05,
            }
            for task, condition, name, severity, metric, value in rows
        ]
    )
    return frame[list(RESULT_COLUMNS)]


def test_headlines_average_perturbations_and_take_mce_against_the_reference() -> None:
    model = _results(0.8, 0.6, {("noise", 3): 0.7, ("noise", 5): 0.5, ("blur", 3): 0.6})
    baseline = _results(0.7, 0.5, {("noise", 3): 0.6, ("noise", 5): 0.4, ("blur", 3): 0.4})
    rows = {r["condition"]: r["value"] for r in report.run_headlines(model, baseline)}
    assert rows["in_domain"] == 0.8 and rows["cross_domain"] == 0.6
    assert math.isclose(rows["perturbed"], 0.6)
    assert math.isclose(rows["drop"], 0.2)
    # mCE = mean over corruptions of sum(err_model) / sum(err_baseline)
    expected = np.mean([(0.3 + 0.5) / (0.4 + 0.6), 0.4 / 0.6])
    assert math.isclose(rows["mce"], expected)
    assert "mce" not in {r["condition"] for r in report.run_headlines(model, None)}


def test_t_interval_matches_the_student_t_formula() -> None:
    mean, low, high, std = report.t_interval([0.50, 0.56, 0.59])
    sample = np.array([0.50, 0.56, 0.59])
    half = 4.302652729911275 * sample.std(ddof=1) / math.sqrt(3)  # t(0.975, 2)
    assert math.isclose(mean, sample.mean()) and math.isclose(std, sample.std(ddof=1))
    assert math.isclose(low, mean - half) and math.isclose(high, mean + half)
    single = report.t_interval([0.4])
    assert single[0] == 0.4 and all(math.isnan(v) for v in single[1:])


def _headlines(values: dict[tuple[str, int, str], float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "setting": s,
                "seed": k,
                "task": "vqa",
                "metric": "overall",
                "condition": c,
                "value": v,
            }
            for (s, k, c), v in values.items()
        ]
    )


def test_gaps_are_paired_by_seed_and_name_the_better_setting() -> None:
    values = {}
    for seed, (mmr, robust) in enumerate([(0.50, 0.60), (0.40, 0.52), (0.45, 0.56)]):
        values[("mmr", seed, "in_domain")] = mmr
        values[("robust_mmr", seed, "in_domain")] = robust
        # drops: robust drops less (lower is better)
        values[("mmr", seed, "drop")] = 0.20 + 0.01 * seed
        values[("robust_mmr", seed, "drop")] = 0.10 + 0.01 * seed
        values[("mmr", seed, "cross_domain")] = 0.3 + 0.1 * seed
        values[("robust_mmr", seed, "cross_domain")] = 0.3 + 0.1 * seed + (-1) ** seed * 0.05
    gaps = report.paired_gaps(_headlines(values), "robust_mmr", "mmr").set_index("condition")
    assert math.isclose(gaps.loc["in_domain", "gap"], np.mean([0.10, 0.12, 0.11]))
    assert gaps.loc["in_domain", "better"] == "robust_mmr"
    assert math.isclose(gaps.loc["drop", "gap"], -0.10)
    assert gaps.loc["drop", "better"] == "robust_mmr"  # a smaller drop is better
    assert gaps.loc["cross_domain", "better"] == ""  # the interval covers 0
    assert (gaps["n_pairs"] == 3).all()


def test_summary_orders_settings_and_marks_single_seeds() -> None:
    headlines = _headlines(
        {
            ("robust_mmr", 0, "in_domain"): 0.6,
            ("mmr", 0, "in_domain"): 0.5,
            ("mmr", 1, "in_domain"): 0.7,
        }
    )
    summary = report.summarise_settings(headlines, ["mmr", "robust_mmr"])
    assert list(summary["setting"]) == ["mmr", "robust_mmr"]
    assert list(summary["n_seeds"]) == [2, 1]
    assert math.isclose(summary["mean"].iloc[0], 0.6)
    markdown = report.render_ablation_markdown(
        summary, report.paired_gaps(headlines, "robust_mmr", "mmr"), {"seeds": "0, 1"}, "a.png"
    )
    assert "0.600 (n=1)" in markdown and "| mmr | 0.600 [" in markdown


@pytest.mark.parametrize("seeds", [1, 3])
def test_figure_and_html_render_for_any_seed_count(seeds: int) -> None:
    values = {
        (s, k, c): 0.5 + 0.01 * k
        for s in ("no_pretraining", "mmr")
        for k in range(seeds)
        for c in ("in_domain", "cross_domain", "perturbed")
    }
    headlines = _headlines(values)
    summary = report.summarise_settings(headlines, ["no_pretraining", "mmr"])
    figure = report.ablation_figure(summary, ["no_pretraining", "mmr"])
    page = report.render_ablation_html(
        summary, report.paired_gaps(headlines, "mmr", "mmr"), {}, figure
    )
    assert page.count("data:image/png;base64,") == 1 and "<h2>VQA</h2>" in page
