"""Summary table and figure of the split manifests."""

from __future__ import annotations

from pathlib import Path

from kedro_datasets.matplotlib import MatplotlibDataset

from robust_mmr_pipeline.splits import build_splits, plot_split_counts, split_counts
from robust_mmr_pipeline.splits.summary import COUNTS, GROUP


def test_counts_match_manifests_and_grid_is_complete(cohort, split_kwargs) -> None:
    manifests = build_splits(**cohort, **split_kwargs())
    summary = split_counts(
        images=cohort["images"],
        vqa=cohort["vqa"],
        classification=cohort["classification"],
        split_images=manifests.images,
        split_pairs=manifests.pairs,
        split_vqa=manifests.vqa,
        split_classification=manifests.classification,
    )
    assert list(summary.columns) == GROUP + COUNTS
    assert len(summary) == len(manifests.protocols) * 3 * 3  # protocols x splits x domains
    assert not summary.duplicated(subset=GROUP).any()
    by_protocol = summary.groupby("protocol")[["images", "pairs", "vqa"]].sum()
    assert (by_protocol["images"] == len(cohort["images"])).all()
    assert (by_protocol["pairs"] == len(cohort["pairs"])).all()
    expected_vqa = manifests.vqa.groupby("protocol").size()
    assert (by_protocol["vqa"] == expected_vqa.reindex(by_protocol.index)).all()
    cross = summary[(summary["protocol"] == "cross_domain") & (summary["domain"] == "c")]
    assert cross.set_index("split").loc[["train", "val"], "images"].sum() == 0


def test_figure_has_one_panel_per_protocol(cohort, split_kwargs, tmp_path: Path) -> None:
    manifests = build_splits(**cohort, **split_kwargs())
    summary = split_counts(
        images=cohort["images"],
        vqa=cohort["vqa"],
        classification=cohort["classification"],
        split_images=manifests.images,
        split_pairs=manifests.pairs,
        split_vqa=manifests.vqa,
        split_classification=manifests.classification,
    )
    figure = plot_split_counts(summary)
    assert len(figure.axes) == len(manifests.protocols)
    target = tmp_path / "counts.png"
    MatplotlibDataset(filepath=str(target), save_args={"format": "png"}).save(figure)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
