"""Fixture writers: tiny copies of each published dataset format, written under tmp_path.

Each ``write_*`` function writes a small but complete copy in the layout and file format the
dataset is published in (file names, field names, separators, quirks such as VQA-RAD's
``"CLOSED "`` or ROCO's leading caption space) with tiny PIL images, and returns its root.
Tests then break one thing at a time (delete or corrupt an image, edit a record) to check the
bad-record handling. ``shared_data_dir`` locates the real copies in ``../shared/data``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from robust_mmr_pipeline.schema import SourceTables
from robust_mmr_pipeline.sources.common.bad_records import IngestionError

# --------------------------------------------------------------------------------------------
# Shared data and generic helpers
# --------------------------------------------------------------------------------------------


def shared_data_dir() -> Path:
    """``../shared/data`` next to the repository, or ``$ROBUST_MMR_SHARED_DATA``."""
    override = os.environ.get("ROBUST_MMR_SHARED_DATA")
    if override:
        return Path(override)
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


def require_shared(relative: str) -> Path:
    """The shared-data path ``relative``, skipping the test with a reason when it is absent."""
    path = shared_data_dir() / relative
    if not path.exists():
        pytest.skip(
            f"real data {path} is absent (set ROBUST_MMR_SHARED_DATA to a copy of shared/data)"
        )
    return path


def write_image(path: Path, size: tuple[int, int] = (8, 6), shade: int = 100) -> Path:
    """A tiny image whose format follows the suffix (JPEG / PNG), distinct per ``shade``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if path.suffix.lower() == ".png" else "RGB"
    color: int | tuple[int, int, int] = shade if mode == "L" else (shade, shade // 2, 30)
    Image.new(mode, size, color).save(path)
    return path


def corrupt_image(path: Path) -> Path:
    """Replace an image by a truncated copy (a valid header but missing data)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(len(data) // 3, 20)])
    return path


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False), encoding="utf-8")
    return path


def edit_json(path: Path, edit: Callable[[Any], None]) -> Path:
    """Load ``path``, let ``edit`` change the data in place, write it back."""
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    return write_json(path, data)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


Reader = Callable[..., SourceTables]


def assert_bad_record(
    read: Reader, root: Path, options: dict[str, Any], reason: str, file_part: str
) -> SourceTables:
    """Check one bad record under both policies and return the ``drop`` result.

    ``raise`` must fail with an IngestionError whose message holds ``reason`` (a fragment of
    the bad-record reason), ``file_part`` (part of the file name) and a fix; ``drop`` must
    return exactly one rejects row with that reason and file.
    """
    with pytest.raises(IngestionError) as caught:
        read(root, "src", options, "raise")
    message = str(caught.value)
    assert reason in message, message
    assert file_part in message, message
    assert "Fix:" in message, message
    tables = read(root, "src", options, "drop")
    assert len(tables.rejects) == 1, tables.rejects.to_dict(orient="records")
    row = tables.rejects.iloc[0]
    assert reason in row["reason"], row.to_dict()
    assert file_part in row["file"], row.to_dict()
    assert row["source"] == "src"
    return tables


# --------------------------------------------------------------------------------------------
# VQA-RAD
# --------------------------------------------------------------------------------------------

VQA_RAD_IMAGES: dict[str, int] = {
    "synpic100.jpg": 40,
    "synpic200.jpg": 80,
    "synpic300.jpg": 120,
    "synpic400.jpg": 160,  # referenced by no record, like synpic35356.jpg in the release
}


def _official(values: tuple[Any, ...]) -> dict[str, Any]:
    """An official record from (qid, phrase_type, image, organ, question, answer, type, qtype)."""
    qid, phrase_type, image, organ, question, answer, answer_type, question_type = values
    return {
        "qid": qid,
        "phrase_type": phrase_type,
        "qid_linked_id": f"linked-{qid}",
        "image_case_url": "https://medpix.nlm.nih.gov/case?id=x",
        "image_name": image,
        "image_organ": organ,
        "evaluation": "not evaluated",
        "question": question,
        "question_rephrase": "NULL",
        "question_relation": "NULL",
        "question_frame": "NULL",
        "question_type": question_type,
        "answer": answer,
        "answer_type": answer_type,
    }


def vqa_rad_official_records() -> list[dict[str, Any]]:
    """Six official records: qid "0" as a string, an integer answer, a "CLOSED " type."""
    rows: list[tuple[Any, ...]] = [
        ("0", "freeform", "synpic100.jpg", "HEAD", "Are regions of the brain infarcted?", "Yes",
         "CLOSED", "PRES"),
        (1, "para", "synpic100.jpg", "HEAD", "Is there evidence of a hemorrhage?", "No",
         "CLOSED ", "PRES"),
        (2, "freeform", "synpic200.jpg", "CHEST", "How many ribs are fractured?", 4, "OPEN",
         "COUNT"),
        (3, "freeform", "synpic200.jpg", "CHEST", "Where is the effusion?", "Right  lung.",
         "OPEN", "POS, PRES"),
        (4, "test_freeform", "synpic300.jpg", "ABD", "Is this an MRI?", "no", "CLOSED",
         "MODALITY"),
        (5, "test_para", "synpic300.jpg", "ABD", "What organ is enlarged?", "Liver", "OPEN",
         "ORGAN"),
    ]  # fmt: skip
    return [_official(row) for row in rows]


def _mevf(values: tuple[Any, ...]) -> dict[str, Any]:
    """A MEVF record from (qid, image, organ, question, answer, answer_type, phrase_type)."""
    qid, image, organ, question, answer, answer_type, phrase_type = values
    return {
        "qid": qid,
        "image_name": image,
        "image_organ": organ,
        "answer": answer,
        "answer_type": answer_type,
        "question_type": "PRES",
        "question": question,
        "phrase_type": phrase_type,
    }


def vqa_rad_mevf_records() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """MEVF train (with a ``frame`` phrase type) and test records."""
    train = [
        (1, "synpic100.jpg", "HEAD", "Are regions of the brain infarcted?", "Yes", "CLOSED",
         "freeform"),
        (2, "synpic200.jpg", "CHEST", "Is there a pneumothorax?", "no", "CLOSED ", "frame"),
        (3, "synpic200.jpg", "CHEST", "What is abnormal?", "Effusion", "OPEN", "para"),
    ]  # fmt: skip
    test = [(11, "synpic300.jpg", "ABD", "Is the liver enlarged?", "yes", "CLOSED", "freeform")]
    return [_mevf(row) for row in train], [_mevf(row) for row in test]


def write_vqa_rad(root: Path) -> Path:
    """A VQA-RAD release: official JSON, mevf_split/ and images/."""
    for name, shade in VQA_RAD_IMAGES.items():
        write_image(root / "images" / name, size=(10 + shade // 40, 8), shade=shade)
    write_json(root / "VQA_RAD Dataset Public.json", vqa_rad_official_records())
    train, test = vqa_rad_mevf_records()
    write_json(root / "mevf_split" / "trainset.json", train)
    write_json(root / "mevf_split" / "testset.json", test)
    return root


# --------------------------------------------------------------------------------------------
# SLAKE
# --------------------------------------------------------------------------------------------


def _slake(values: tuple[Any, ...]) -> dict[str, Any]:
    """A record from (qid, image number, question, answer, q_lang, modality, location, type)."""
    qid, img, question, answer, lang, modality, location, answer_type = values
    return {
        "img_id": img,
        "img_name": f"xmlab{img}/source.jpg",
        "question": question,
        "answer": answer,
        "q_lang": lang,
        "location": location,
        "modality": modality,
        "answer_type": answer_type,
        "base_type": "vqa",
        "content_type": "Organ",
        "triple": ["vhead", "_", "_"],
        "qid": qid,
    }


def slake_files() -> dict[str, list[dict[str, Any]]]:
    """train / validate / test records, English and Chinese."""
    files: dict[str, list[tuple[Any, ...]]] = {
        "train.json": [
            (0, 0, "What modality is used?", "CT", "en", "CT", "Abdomen", "OPEN"),
            (1, 0, "Does the picture contain liver?", "Yes", "en", "CT", "Abdomen", "CLOSED"),
            (2, 1, "Which organ is abnormal?", "Lung", "en", "X-Ray", "Chest", "OPEN"),
            (3, 1, "图中有肺吗?", "有", "zh", "X-Ray", "Chest", "CLOSED"),
        ],
        "validate.json": [
            (10, 2, "What is the largest organ?", "Brain", "en", "MRI", "Head", "OPEN"),
            (11, 0, "这是什么模态?", "CT", "zh", "CT", "Abdomen", "OPEN"),
        ],
        "test.json": [
            (20, 3, "Is this a T1 weighted image?", "No", "en", "MRI", "Brain", "CLOSED"),
        ],
    }
    return {file: [_slake(row) for row in rows] for file, rows in files.items()}


def write_slake(root: Path) -> Path:
    """A SLAKE 1.0 release: train/validate/test.json and imgs/xmlabN/source.jpg."""
    for img in range(4):
        write_image(root / "imgs" / f"xmlab{img}" / "source.jpg", shade=30 + 40 * img)
    for file, records in slake_files().items():
        write_json(root / file, records)
    return root


# --------------------------------------------------------------------------------------------
# VQA-Med 2019
# --------------------------------------------------------------------------------------------

VQA_MED_TRAIN = "ImageClef-2019-VQA-Med-Training"
VQA_MED_VAL = "ImageClef-2019-VQA-Med-Validation"
VQA_MED_TEST = "VQAMed2019Test"


def vqa_med_lines() -> dict[str, list[str]]:
    """Relative file path -> lines, in the published ``|``-separated formats."""
    train = f"{VQA_MED_TRAIN}/QAPairsByCategory"
    val = f"{VQA_MED_VAL}/QAPairsByCategory"
    return {
        f"{train}/C1_Modality_train.txt": [
            "synpic1|what modality is shown?|xr - plain film",
            "synpic2|is this a ct scan?|yes",
        ],
        f"{train}/C2_Plane_train.txt": [
            "synpic1|in what plane is this image oriented?|pa",
            "synpic2|which plane is this image in?|axial",
        ],
        f"{train}/C3_Organ_train.txt": [
            "synpic1|what organ system is shown?|lung, mediastinum, pleura",
            "synpic2|what is the organ principally shown?|skull and contents",
        ],
        f"{train}/C4_Abnormality_train.txt": [
            "synpic1|what is abnormal in the x-ray?|pneumothorax",
            "synpic2|is this image normal?|no",
        ],
        f"{val}/C1_Modality_val.txt": ["synpic3|how was this image taken?|mr - t2 weighted"],
        f"{val}/C2_Plane_val.txt": ["synpic3|what plane is this?|sagittal"],
        f"{val}/C3_Organ_val.txt": ["synpic3|which organ is captured?|spine and contents"],
        f"{val}/C4_Abnormality_val.txt": ["synpic3|what is most alarming?|disc herniation"],
        f"{VQA_MED_TEST}/VQAMed2019_Test_Questions_w_Ref_Answers.txt": [
            "synpic4|modality|is \tthis a t1 weighted image?|yes",
            "synpic5|abnormality|what is the primary abnormality?|glioma#oligodendroglioma",
        ],
    }


def write_vqa_med_2019(root: Path) -> Path:
    """The three unzipped VQA-Med 2019 folders (training, validation, test)."""
    for relative, lines in vqa_med_lines().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    for image, folder in (
        ("synpic1", f"{VQA_MED_TRAIN}/Train_images"),
        ("synpic2", f"{VQA_MED_TRAIN}/Train_images"),
        ("synpic3", f"{VQA_MED_VAL}/Val_images"),
        ("synpic4", f"{VQA_MED_TEST}/VQAMed2019_Test_Images"),
        ("synpic5", f"{VQA_MED_TEST}/VQAMed2019_Test_Images"),
    ):
        write_image(root / folder / f"{image}.jpg", shade=20 * int(image[-1]))
    return root


# --------------------------------------------------------------------------------------------
# ROCO
# --------------------------------------------------------------------------------------------


def roco_records() -> dict[str, list[tuple[str, str, list[str], str]]]:
    """Split folder -> (ROCO_ID, caption, keywords, PMC image file)."""
    return {
        "validation": [
            (
                "ROCO_00020",
                "Axial computed tomography scan of the pelvis.",
                ["pelvi", "scan", "axial", "tomography"],
                "PMC3970251_fig-003.jpg",
            ),
            (
                "ROCO_00027",
                "Postoperative anteroposterior radiograph of the pelvis.",
                ["postoperative", "pelvi", "radiograph"],
                "PMC2766744_g005.jpg",
            ),
            ("ROCO_05014", "Dosimetric results obtained with RapidArc.", [], "PMC1000001_g001.jpg"),
        ],
        "test": [
            (
                "ROCO_00001",
                "Axial MRI (coronal view).",
                ["axial", "coronal", "mri", "view"],
                "PMC4608653_g01.jpg",
            ),
            (
                "ROCO_00006",
                "Doppler image of the carotid artery.",
                ["doppler", "carotid", "artery"],
                "PMC4840839_g02.jpg",
            ),
        ],
    }


def write_roco(root: Path, image_naming: str = "pmc") -> Path:
    """ROCO split folders with captions.txt, keywords.txt, licences.txt and images/."""
    for folder, records in roco_records().items():
        split_dir = root / folder
        split_dir.mkdir(parents=True, exist_ok=True)
        captions = [f"{rid}\t {caption}" for rid, caption, _, _ in records]
        keywords = [
            f"{rid}\t\t" + "\t".join(kws) if kws else f"{rid}\t" for rid, _, kws, _ in records
        ]
        (split_dir / "captions.txt").write_text("\n".join(captions) + "\n", encoding="utf-8")
        (split_dir / "keywords.txt").write_text("\n".join(keywords) + "\n", encoding="utf-8")
        write_csv(
            split_dir / "licences.txt",
            ["ROCO_ID", "PMC_ID", "CC"],
            [[rid, pmc, "CC BY"] for rid, _, _, pmc in records],
        )
        for index, (rid, _, _, pmc) in enumerate(records):
            file = pmc if image_naming == "pmc" else f"{rid}.jpg"
            write_image(split_dir / "images" / file, shade=50 + 30 * index)
    return root


# --------------------------------------------------------------------------------------------
# MELINDA
# --------------------------------------------------------------------------------------------

MELINDA_HEADER = [
    "pmcid",
    "figure_file",
    "caption",
    "i_meth",
    "p_meth",
    "i_meth_label",
    "p_meth_label",
]


def melinda_rows() -> dict[str, list[list[str]]]:
    """train / dev / test rows (one figure shared by two rows in train)."""
    return {
        "train.csv": [
            [
                "PMC1",
                "PMC1_fig1_a.jpg",
                "Co-immunoprecipitation of A and B.",
                "anti bait coip",
                "western blot",
                "Affinity chromatography",
                "Antibody",
            ],
            [
                "PMC1",
                "PMC1_fig1_a.jpg",
                'A "pull down" assay, with controls.',
                "pull down",
                "western blot",
                "Affinity chromatography",
                "Antibody",
            ],
            [
                "PMC2",
                "PMC2_fig2_b.jpg",
                "Fluorescence microscopy of GFP-tagged cells.",
                "fluorescence microscopy",
                "tag visualisation",
                "Imaging technique",
                "Tag",
            ],
        ],
        "dev.csv": [
            [
                "PMC3",
                "PMC3_fig3.jpg",
                "Two hybrid assay.",
                "two hybrid",
                "sequence tag",
                "Genetic",
                "Sequence",
            ],
        ],
        "test.csv": [
            [
                "PMC4",
                "PMC4_fig4.jpg",
                "Crosslinking study.",
                "cross-linking study",
                "western blot",
                "Cross-linking",
                "Antibody",
            ],
        ],
    }


def write_melinda(root: Path) -> Path:
    """MELINDA train/dev/test CSVs and melinda_images/."""
    shade = 40
    for file, rows in melinda_rows().items():
        write_csv(root / file, MELINDA_HEADER, rows)
        for row in rows:
            image = root / "melinda_images" / row[1]
            if not image.exists():
                write_image(image, shade=shade)
                shade += 30
    return root


# --------------------------------------------------------------------------------------------
# IU X-ray (R2Gen)
# --------------------------------------------------------------------------------------------


def iu_xray_annotation() -> dict[str, list[dict[str, Any]]]:
    """R2Gen-style annotation: nested image paths, a one-image study, ``split`` fields."""

    def study(sid: str, split: str, n_images: int, report: str) -> dict[str, Any]:
        return {
            "id": sid,
            "report": report,
            "image_path": [f"{sid}/{k}.png" for k in range(n_images)],
            "split": split,
        }

    return {
        "train": [
            study("CXR1_1_IM-0001", "train", 2, "The heart is normal.  No XXXX effusion."),
            study("CXR2_1_IM-0002", "train", 1, "Lungs are clear.\nNo pneumothorax."),
        ],
        "val": [study("CXR3_1_IM-0003", "val", 2, "Mild cardiomegaly.")],
        "test": [study("CXR4_1_IM-0004", "test", 2, "No acute disease.")],
    }


def write_iu_xray(root: Path) -> Path:
    """annotation.json and images/<study>/<k>.png."""
    annotation = iu_xray_annotation()
    write_json(root / "annotation.json", annotation)
    shade = 20
    for records in annotation.values():
        for record in records:
            for image in record["image_path"]:
                write_image(root / "images" / image, shade=shade)
                shade += 15
    return root


# --------------------------------------------------------------------------------------------
# Generic CSV
# --------------------------------------------------------------------------------------------

CSV_HEADER = ["id", "image", "text", "label", "split", "site"]


def csv_rows() -> list[list[str]]:
    return [
        ["a1", "img/a1.png", "Chest film, no effusion.", "normal", "train", "site_a"],
        ["a2", "img/a2.png", "Right lower lobe opacity.", "pneumonia", "validation", "site_a"],
        ["b1", "img/b1.png", "Clear lungs.", "normal", "test", "site_b"],
    ]


def write_csv_pairs(root: Path) -> Path:
    """pairs.csv (id, image, text, label, split, site) and its images."""
    write_csv(root / "pairs.csv", CSV_HEADER, csv_rows())
    for index, row in enumerate(csv_rows()):
        write_image(root / row[1], shade=60 + 50 * index)
    return root


CSV_VQA_HEADER = ["id", "image", "question", "answer", "answer_type", "split", "site"]


def csv_vqa_rows() -> list[list[str]]:
    """A VQA-only CSV: no text column, one question per row."""
    return [
        ["q1", "img/v1.png", "Is there a fracture?", "No", "CLOSED", "train", "site_a"],
        ["q2", "img/v1.png", "Which side is abnormal?", "Left.", "OPEN", "train", "site_a"],
        ["q3", "img/v2.png", "Is the heart enlarged?", "yes", "CLOSED", "val", "site_b"],
        ["q4", "img/v3.png", "What organ is shown?", "Liver", "OPEN", "test", "site_b"],
    ]


def write_csv_vqa(root: Path) -> Path:
    """vqa.csv (id, image, question, answer, answer_type, split, site) and its images."""
    write_csv(root / "vqa.csv", CSV_VQA_HEADER, csv_vqa_rows())
    for index, image in enumerate(sorted({row[1] for row in csv_vqa_rows()})):
        write_image(root / image, shade=40 + 60 * index)
    return root


CSV_VQA_OPTIONS: dict[str, Any] = {
    "file": "vqa.csv",
    "text_column": None,
    "id_column": "id",
    "question_column": "question",
    "answer_column": "answer",
    "answer_type_column": "answer_type",
    "split_column": "split",
    "domain_column": "site",
}
