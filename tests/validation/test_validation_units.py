"""Units of the validation package: parameters, PHI patterns, image check, report, GX context."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image, ImageFile, PngImagePlugin
from validation_test_support import SHARED_DATA, requires_shared, write_png_header

from robust_mmr_pipeline.params import ParameterError, parse, schema_for
from robust_mmr_pipeline.validation.checks import CHECKS, DEFAULT_FATAL, DEFAULT_WARN
from robust_mmr_pipeline.validation.config import ValidationParams
from robust_mmr_pipeline.validation.images import (
    IMAGE_CHECK_COLUMNS,
    check_file,
    check_images,
    outside_root,
)
from robust_mmr_pipeline.validation.phi import PHI_PATTERNS, scan_tables, scan_text
from robust_mmr_pipeline.validation.report import (
    REPORT_FILES,
    render_html,
    render_markdown,
    write_report,
)
from robust_mmr_pipeline.validation.run import validate_all
from robust_mmr_pipeline.validation.synthetic import make_synthetic

REPO_ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- parameters


def test_base_parameters_equal_the_dataclass_defaults() -> None:
    conf = yaml.safe_load((REPO_ROOT / "conf/base/parameters_validation.yml").read_text())
    params = parse(schema_for("validation"), conf["validation"], "validation")
    assert params == ValidationParams()
    assert set(DEFAULT_FATAL) | set(DEFAULT_WARN) == set(CHECKS)
    assert set(params.fatal) | set(params.warn) == set(CHECKS)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"fatal": ["ids_unqiue"]}, "unknown check name"),
        ({"warn": ["ids_unique"]}, "listed in both validation.fatal and validation.warn"),
        ({"text_length": {"vqa.answr": {"min": 1, "max": 5}}}, "vqa.answr"),
        ({"images": {"side": {"min": 64, "max": 32}}}, "min <= max"),
        ({"phi": {"kinds": ["passport"]}}, "unknown kind"),
        ({"phi": {"allowed_sources": {"roco": " "}}}, "give the reason"),
        ({"images": {"max_pixels": 0}}, "max_pixels must be >= 1"),
        ({"phi": {"extra_patterns": {"badge": "([0-9]{3})-[0-9]{2}"}}}, "non-capturing"),
        ({"split_overlap": {"between": [["train", "train"]]}}, "two different splits"),
        ({"min_rows": {"imgs": 1}}, "unknown table"),
        ({"imgaes": {}}, "imgaes"),
    ],
)
def test_invalid_parameters_name_the_key(override: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        parse(ValidationParams, override, "validation")


def test_unlisted_check_is_a_warning() -> None:
    fatal = [n for n in DEFAULT_FATAL if n != "image_decodes"]
    params = parse(ValidationParams, {"fatal": fatal}, "validation")
    assert params.severities()["image_decodes"] == "warn"


# ----------------------------------------------------------------------------- PHI


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("Seen on 03/14/2012 and 2012-03-14.", {"date"}),
        ("Follow-up March 3, 2011.", {"date"}),
        ("Call (555) 123-4567.", {"phone"}),
        ("Call 555-123-4567.", {"phone"}),
        ("MRN: 00123456", {"mrn"}),
        ("Accession no. 12345", {"mrn"}),
        ("Write to jane.doe@hospital.org", {"email"}),
        ("Reviewed by Dr. Smith.", {"doctor_name"}),
        ("Patient: John Doe", {"patient_name"}),
        # IU X-ray de-identification masks and clinical numbers must not trigger
        ("XXXX-year-old XXXX. Dr. XXXX. Patient: XXXX. Comparison XXXX, XXXX.", set()),
        ("Cardiothoracic ratio of 16.2/24.7; T11 and T12; 3.5 x 2.1 cm; 1/2/3.", set()),
        ("Frontal and lateral views of the chest dated XXXX, XXXX at XXXX hours.", set()),
    ],
)
def test_phi_patterns(text: str, kinds: set[str]) -> None:
    found = scan_text(pd.Series([text], dtype="str"), pd.Series(["r1"]), PHI_PATTERNS)
    assert {k for frame in found for k in frame["kind"]} == kinds


def test_phi_patterns_agree_between_arrow_and_python_strings() -> None:
    texts = ["Dr. Smith 03/14/2012", "no phi here", "MRN 1234567", "a@b.co", None]
    ids = pd.Series(range(len(texts)))
    arrow = pd.concat(scan_text(pd.Series(texts, dtype="str"), ids, PHI_PATTERNS))
    python = pd.concat(scan_text(pd.Series(texts, dtype=object), ids, PHI_PATTERNS))
    assert arrow.reset_index(drop=True).equals(python.reset_index(drop=True))


def test_phi_table_columns_and_extra_patterns() -> None:
    vqa = pd.DataFrame(
        {"qid": ["site:q1", "site:q2"], "question": ["Badge BDG-1234 on the film?", "fine"]}
    )
    params = parse(
        ValidationParams,
        {"phi": {"kinds": ["ssn"], "extra_patterns": {"badge": r"\bBDG-[0-9]{4}\b"}}},
        "validation",
    )
    table = scan_tables({"vqa": vqa}, {"vqa": ["question"]}, {"vqa": "qid"}, params.phi.patterns())
    assert table.to_dict("records") == [
        {
            "table": "vqa",
            "source": "site",
            "id": "site:q1",
            "column": "question",
            "kind": "badge",
            "masked": "B**-1***",  # never the identifier itself
        }
    ]


@requires_shared("iu_xray", "annotation.json")
def test_iu_xray_masks_do_not_trigger_phi() -> None:
    annotation = json.loads((SHARED_DATA / "iu_xray" / "annotation.json").read_text())
    reports = [r for split in annotation.values() for r in split]
    text = pd.Series([r["report"] for r in reports], dtype="str")
    assert text.str.contains("XXXX").sum() > 1000
    found = scan_text(text, pd.Series([r["id"] for r in reports]), PHI_PATTERNS)
    assert found == []


# ----------------------------------------------------------------------------- images


def test_image_check_pool_matches_in_process(tmp_path: Path) -> None:
    synthetic = make_synthetic(tmp_path / "s", n_images=40)
    images = synthetic.tables["images"]
    (tmp_path / "s" / images["path"].iloc[3]).write_bytes(b"")
    serial = check_images(images, synthetic.roots, workers=1)
    pooled = check_images(images, synthetic.roots, workers=2, min_parallel=0, chunksize=4)
    assert list(serial.columns) == list(IMAGE_CHECK_COLUMNS)
    pd.testing.assert_frame_equal(serial, pooled)
    assert serial["decodes"].sum() == 39
    assert serial.loc[3, "error"] == "zero-byte file"


def test_image_check_without_path_column_reports_every_row(tmp_path: Path) -> None:
    synthetic = make_synthetic(tmp_path / "s", n_images=3)
    table = check_images(synthetic.tables["images"].drop(columns=["path"]), synthetic.roots)
    assert not table["exists"].any()
    assert set(table["error"]) == {"the images table lacks column(s) ['path']"}
    assert table["image_id"].tolist() == synthetic.tables["images"]["image_id"].tolist()


@pytest.mark.parametrize("side", [12000, 20000])  # 20000^2 is past Pillow's own error limit
def test_image_above_max_pixels_is_never_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int
) -> None:
    path = write_png_header(tmp_path / "huge.png", side, side)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "verify", no_decoding)
    limit_before = Image.MAX_IMAGE_PIXELS
    exists, in_root, decodes, width, height, _, _, error = check_file(
        str(path), full_decode=True, root=str(tmp_path)
    )
    assert (exists, in_root, decodes, width, height) == (True, True, None, side, side)
    assert f"{side} x {side} = {side * side:,} pixels, above validation.images.max_pixels" in error
    assert limit_before == Image.MAX_IMAGE_PIXELS  # Pillow's global is restored


def test_max_pixels_is_a_validation_setting(tmp_path: Path) -> None:
    synthetic = make_synthetic(tmp_path / "s", n_images=3)
    images = synthetic.tables["images"]
    params = parse(ValidationParams, {"images": {"max_pixels": 100}}, "validation")
    table = check_images(images, synthetic.roots, max_pixels=params.images.max_pixels)
    assert table["decodes"].isna().all() and table["error"].str.contains("not decoded").all()
    summary = validate_all(
        {**synthetic.tables},
        table,
        scan_tables({}, {}, {}, {}),
        params,
    )
    failed = {(c["check"], c["status"]) for c in summary["checks"] if not c["success"]}
    assert ("image_pixels", "fatal") in failed


def test_symlink_leaving_the_root_is_not_opened(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    root.mkdir()
    secret = tmp_path / "secret.png"
    Image.new("L", (40, 40)).save(secret)
    (root / "link.png").symlink_to(secret)
    (root / "inner").mkdir()
    Image.new("L", (40, 40)).save(root / "inner" / "ok.png")
    (root / "inner_link.png").symlink_to(root / "inner" / "ok.png")  # stays inside: fine
    assert "outside the image root" in outside_root(root / "link.png", root)
    assert outside_root(root / "inner_link.png", root) is None
    assert "outside" in outside_root(root / "inner" / ".." / ".." / "secret.png", root)
    images = pd.DataFrame(
        {
            "image_id": ["s:link", "s:inner"],
            "source": ["s", "s"],
            "path": ["link.png", "inner_link.png"],
        }
    )
    table = check_images(images, {"s": str(root)})
    assert table["in_root"].tolist() == [False, True]
    assert pd.isna(table.loc[0, "decodes"]) and table.loc[0, "exists"]
    assert str(secret.resolve()) in table.loc[0, "error"]
    assert bool(table.loc[1, "decodes"])


# ----------------------------------------------------------------------------- report


@pytest.fixture(scope="module")
def summary_in_empty_cwd(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[Path]]:
    """One validation run from an empty working directory, and what that directory holds after."""
    base = tmp_path_factory.mktemp("report")
    synthetic = make_synthetic(base / "s", n_images=10)
    tables = dict(synthetic.tables)
    pairs = tables["pairs"].copy()
    pairs.loc[0, "text"] = "<script>alert('x')</script> | pipe"
    tables["pairs"] = pairs
    image_checks = check_images(tables["images"], synthetic.roots, workers=1)
    phi = scan_tables(tables, {}, {}, {})
    work = base / "cwd"
    work.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        summary = validate_all(tables, image_checks, phi, ValidationParams(min_class_count=100))
    return summary, list(work.iterdir())


def test_report_files_are_written_and_escaped(summary_in_empty_cwd, tmp_path: Path) -> None:
    summary = summary_in_empty_cwd[0]
    assert summary["success"] and summary["warnings"] == 1  # class_min_count (100 asked)
    markdown, html_text = render_markdown(summary), render_html(summary)
    paths = write_report(summary, markdown, html_text, tmp_path / "reports")
    assert sorted(p.name for p in paths.values()) == sorted(REPORT_FILES.values())
    assert json.loads(paths["summary"].read_text())["success"] is True
    assert "WARN: class_counts · class_min_count" in markdown
    assert "## Summaries" in markdown and "Images per source and domain" in markdown
    assert "<summary>PHI findings</summary>" in html_text and "WARN: class_counts" in html_text
    assert not list((tmp_path / "reports").glob(".*"))  # no temporary files left


def test_html_escapes_example_records(summary_in_empty_cwd) -> None:
    summary = json.loads(json.dumps(summary_in_empty_cwd[0]))
    check = next(c for c in summary["checks"] if c["check"] == "class_min_count")
    check["examples"] = [{"text": "<script>alert('x')</script> | pipe"}]
    html_text, markdown = render_html(summary), render_markdown(summary)
    assert "&lt;script&gt;" in html_text and "<script>" not in html_text
    assert "<script>alert('x')</script> \\| pipe" in markdown


def test_gx_runs_ephemeral_and_writes_nothing(summary_in_empty_cwd) -> None:
    summary, written = summary_in_empty_cwd
    assert summary["great_expectations"].startswith("1.")
    assert written == []


def test_the_guard_quarantines_flagged_rows_and_keeps_opted_out_sources() -> None:
    from robust_mmr_pipeline.validation.phi import guard_tables

    pairs = pd.DataFrame(
        {
            "pair_id": ["site:1", "site:q1:qa", "site:2", "open:1"],
            "text": ["JOHN SMITH, 45M.", "Is #A1234567 a CT? yes.", "Clear lungs.", "Mr. Jones."],
        }
    )
    vqa = pd.DataFrame({"qid": ["site:q1", "site:q2"], "question": ["Is #A1234567 a CT?", "Ok?"]})
    tables, findings = guard_tables(
        {"pairs": pairs, "vqa": vqa},
        {"pairs": ["text"], "vqa": ["question"]},
        {"pairs": "pair_id", "vqa": "qid"},
        PHI_PATTERNS,
        allowed_sources={"open"},
    )
    # flagged rows are out (a VQA row takes its QA statement along); opted-out rows stay
    assert list(tables["pairs"]["pair_id"]) == ["site:2", "open:1"]
    assert list(tables["vqa"]["qid"]) == ["site:q2"]
    actions = dict(zip(findings["id"], findings["action"], strict=True))
    assert actions == {
        "open:1": "kept (source opted out)",
        "site:1": "quarantined",
        "site:q1:qa": "quarantined",
        "site:q1": "quarantined",
    }
    cells = " ".join(findings.astype(str).to_numpy().ravel())
    assert "SMITH" not in cells and "1234567" not in cells and "Jones" not in cells
