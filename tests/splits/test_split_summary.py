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
    # Every count cell is the manifest's count in that group (zeros for absent groups).
    table = summary.set_index(["protocol", "split", "domain"])
    for column, frame in (
        ("images", manifests.images),
        ("pairs", manifests.pairs),
        ("vqa", manifests.vqa),
        ("classification", manifests.classification),
    ):
        counts = frame.groupby(["protocol", "split", "domain"]).size()
        assert set(counts.index) <= set(table.index)
        expected = counts.reindex(table.index, fill_value=0)
        assert table[column].to_dict() == expected.to_dict(), column
    assert (summary[["leaked_images", "vqa_excluded", "classification_excluded"]] == 0).all().all()
    # in_domain holds the 80 images of a and b; the held-out domain c has only zero rows.
    images = cohort["images"]
    in_domain = table.loc["in_domain"]
    assert in_domain["images"].sum() == (images["domain"] != "c").sum() == 80
    assert (in_domain.loc[(slice(None), "c"), COUNTS] == 0).all().all()
    # cross_domain: c only in test (all 40 of it), and in_domain's train/val rows exactly.
    cross = table.loc["cross_domain"]
    assert cross.loc[("test", "c"), "images"] == (images["domain"] == "c").sum() == 40
    assert (
        cross.loc[[("train", "c"), ("val", "c"), ("test", "a"), ("test", "b")], COUNTS]
        .eq(0)
        .all()
        .all()
    )
    train_val = [(split, domain) for split in ("train", "val") for domain in "ab"]
    assert cross.loc[train_val, COUNTS].equals(in_domain.loc[train_val, COUNTS])
    assert in_domain.loc[train_val, "images"].sum() > 0
    # One pair per image, so pairs == images in every cell.
    assert (summary["pairs"] == summary["images"]).all()


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
