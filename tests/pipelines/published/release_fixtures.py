"""Small releases of VQA-RAD, SLAKE and VQA-Med 2019 in their published layouts, big enough
for the whole chain (every protocol gets train, val and test rows) and VQA-only like the real
ones: no reports, no captions, no labels.

Each image is a 40 x 40 JPEG whose brightness encodes a finding, and its questions ask about
it, so the answers depend on the image. The quirks of the releases are kept: VQA-RAD asks test
questions about training images and stores ``"CLOSED "`` and a numeric answer; SLAKE's
train.json has one English record with an empty answer (qid 1622 of the release) and Chinese
records; VQA-Med's lines are ``|``-separated with Windows line ends and the test file carries
the category.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

FINDINGS = ("normal", "mass", "effusion")


def _image(path: Path, index: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shade = 50 + 70 * (index % len(FINDINGS))
    Image.new("RGB", (40, 40), (shade, (shade + 40 * index) % 256, 90)).save(path, quality=95)


def _finding(index: int) -> str:
    return FINDINGS[index % len(FINDINGS)]


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# VQA-RAD: official JSON, phrase_type splits, test questions about training images
# --------------------------------------------------------------------------------------------

VQA_RAD_ORGANS = ("HEAD", "CHEST", "ABD")


def write_vqa_rad_release(root: Path, n_images: int = 36) -> dict[str, int]:
    """``VQA_RAD Dataset Public.json`` + ``images/``; returns the expected counts.

    Per organ: a third of the images are asked train questions only, a third train and test
    questions (the release's overlap), a third test questions only.
    """
    records: list[dict[str, object]] = []
    overlap = 0
    for index in range(n_images):
        name = f"synpic{1000 + index}.jpg"
        _image(root / "images" / name, index)
        organ = VQA_RAD_ORGANS[index % 3]
        group = (index // 3) % 3  # 0: train only, 1: train and test, 2: test only
        overlap += group == 1
        finding = _finding(index)
        asked = [
            ("Is there a mass?", "Yes" if finding == "mass" else "No", "CLOSED "),
            ("Is there an effusion?", "Yes" if finding == "effusion" else "No", "CLOSED"),
            ("What is the abnormality?", finding.capitalize(), "OPEN"),
            ("How many lesions are there?", 1 if finding != "normal" else 0, "OPEN"),
        ]
        for number, (question, answer, answer_type) in enumerate(asked):
            test = group == 2 or (group == 1 and number == 3)
            phrase = (
                ("test_freeform" if number % 2 == 0 else "test_para")
                if test
                else ("freeform" if number % 2 == 0 else "para")
            )
            records.append(
                {
                    "qid": str(len(records)) if not records else len(records),
                    "phrase_type": phrase,
                    "qid_linked_id": f"linked-{len(records)}",
                    "image_case_url": "https://medpix.nlm.nih.gov/case?id=x",
                    "image_name": name,
                    "image_organ": organ,
                    "evaluation": "not evaluated",
                    "question": question,
                    "question_rephrase": "NULL",
                    "question_relation": "NULL",
                    "question_frame": "NULL",
                    "question_type": "PRES",
                    "answer": answer,
                    "answer_type": answer_type,
                }
            )
    _write_json(root / "VQA_RAD Dataset Public.json", records)
    test = sum(1 for r in records if str(r["phrase_type"]).startswith("test"))
    return {
        "images": n_images,
        "train": len(records) - test,
        "test": test,
        "overlap": overlap,
    }


# --------------------------------------------------------------------------------------------
# SLAKE: train / validate / test.json, imgs/xmlabN/source.jpg, English + Chinese
# --------------------------------------------------------------------------------------------

SLAKE_MODALITIES = (("CT", "Abdomen"), ("MRI", "Brain"), ("X-Ray", "Chest"))
EMPTY_ANSWER_QID = 1622


def write_slake_release(root: Path, n_images: int = 36) -> dict[str, int]:
    """The three split files and ``imgs/``; the images are split by file (image-disjoint).

    One English train record (qid 1622, as in the release) has an empty answer: it is dropped
    under the default ``on_bad_record: tolerate``. Returns the expected English counts (the
    empty-answer record excluded).
    """
    files: dict[str, list[dict[str, object]]] = {
        "train.json": [],
        "validate.json": [],
        "test.json": [],
    }
    qid = 0
    for index in range(n_images):
        _image(root / "imgs" / f"xmlab{index}" / "source.jpg", index)
        modality, location = SLAKE_MODALITIES[index % 3]
        position = index % 12
        file = "train.json" if position < 8 else "validate.json" if position < 10 else "test.json"
        finding = _finding(index // 3)
        asked = [
            ("Is there a mass?", "Yes" if finding == "mass" else "No", "CLOSED"),
            ("Is there an effusion?", "Yes" if finding == "effusion" else "No", "CLOSED"),
            ("What is the abnormality?", finding.capitalize(), "OPEN"),
            ("Which modality is used?", modality, "OPEN"),
            ("Where is the abnormality?", location if finding != "normal" else "None", "OPEN"),
            ("图中有异常吗?", "有" if finding != "normal" else "没有", "CLOSED"),
        ]
        for question, answer, answer_type in asked:
            qid += 1
            english = question.isascii()
            files[file].append(
                {
                    "img_id": index,
                    "img_name": f"xmlab{index}/source.jpg",
                    "question": question,
                    "answer": answer,
                    "q_lang": "en" if english else "zh",
                    "location": location,
                    "modality": modality,
                    "answer_type": answer_type,
                    "base_type": "vqa",
                    "content_type": "Abnormality",
                    "triple": ["vhead", "_", "_"],
                    "qid": qid,
                }
            )
    broken = next(r for r in files["train.json"] if r["q_lang"] == "en")
    broken.update(qid=EMPTY_ANSWER_QID, answer="")
    for name, records in files.items():
        _write_json(root / name, records)
    counts = {
        split: sum(1 for r in files[name] if r["q_lang"] == "en")
        for split, name in (
            ("train", "train.json"),
            ("val", "validate.json"),
            ("test", "test.json"),
        )
    }
    counts["train"] -= 1
    return {"images": n_images, **counts, "overlap": 0}


# --------------------------------------------------------------------------------------------
# VQA-Med 2019: three unzipped folders, QAPairsByCategory, '|'-separated, CRLF
# --------------------------------------------------------------------------------------------

VQA_MED_TRAIN = "ImageClef-2019-VQA-Med-Training"
VQA_MED_VAL = "ImageClef-2019-VQA-Med-Validation"
VQA_MED_TEST = "VQAMed2019Test"
ORGAN_SYSTEMS = ("skull and contents", "lung, mediastinum, pleura", "gastrointestinal")
MODALITY_ANSWERS = ("ct w/contrast (iv)", "mr - t2 weighted", "xr - plain film")
CATEGORIES = ("modality", "plane", "organ", "abnormality")
CATEGORY_FILES = {
    "modality": "C1_Modality",
    "plane": "C2_Plane",
    "organ": "C3_Organ",
    "abnormality": "C4_Abnormality",
}


def _vqa_med_answer(category: str, index: int) -> tuple[str, str]:
    system = index % 3
    return {
        "modality": ("what modality is shown?", MODALITY_ANSWERS[system]),
        "plane": ("in what plane is this image oriented?", ("axial", "sagittal", "pa")[system]),
        "organ": ("what organ system is shown in this image?", ORGAN_SYSTEMS[system]),
        "abnormality": ("is this image abnormal?", "yes" if index % 2 else "no"),
    }[category]


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")


def write_vqa_med_2019_release(
    root: Path, n_train: int = 24, n_val: int = 9, n_test: int = 12
) -> dict[str, int]:
    """The training, validation and test folders; the test set asks one question per image
    (categories in turn), so most test images have no organ question (domain unknown)."""
    index = 0
    for folder, images_dir, suffix, count in (
        (VQA_MED_TRAIN, "Train_images", "train", n_train),
        (VQA_MED_VAL, "Val_images", "val", n_val),
    ):
        lines: dict[str, list[str]] = {category: [] for category in CATEGORIES}
        for _ in range(count):
            name = f"synpic{2000 + index}"
            _image(root / folder / images_dir / f"{name}.jpg", index)
            for category in CATEGORIES:
                question, answer = _vqa_med_answer(category, index)
                lines[category].append(f"{name}|{question}|{answer}")
            index += 1
        for category, rows in lines.items():
            _write_lines(
                root / folder / "QAPairsByCategory" / f"{CATEGORY_FILES[category]}_{suffix}.txt",
                rows,
            )
    test_lines = []
    for number in range(n_test):
        name = f"synpic{2000 + index}"
        _image(root / VQA_MED_TEST / "VQAMed2019_Test_Images" / f"{name}.jpg", index)
        category = CATEGORIES[number % 4]
        question, answer = _vqa_med_answer(category, index)
        test_lines.append(f"{name}|{category}|{question}|{answer}")
        index += 1
    _write_lines(root / VQA_MED_TEST / "VQAMed2019_Test_Questions_w_Ref_Answers.txt", test_lines)
    return {
        "images": n_train + n_val + n_test,
        "train": 4 * n_train,
        "val": 4 * n_val,
        "test": n_test,
        "overlap": 0,
    }
