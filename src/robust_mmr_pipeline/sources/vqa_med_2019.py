"""VQA-Med 2019 (ImageCLEF 2019, Ben Abacha et al.) as published.

Layout read (``root`` holds the unzipped release folders; every name is an option)::

    root/ImageClef-2019-VQA-Med-Training/QAPairsByCategory/C1_Modality_train.txt
                                         QAPairsByCategory/C2_Plane_train.txt
                                         QAPairsByCategory/C3_Organ_train.txt
                                         QAPairsByCategory/C4_Abnormality_train.txt
                                         Train_images/<image>.jpg        3,200 images
    root/ImageClef-2019-VQA-Med-Validation/QAPairsByCategory/C1_Modality_val.txt …
                                           Val_images/<image>.jpg        500 images
    root/VQAMed2019Test/VQAMed2019_Test_Questions_w_Ref_Answers.txt
                        VQAMed2019_Test_Images/<image>.jpg               500 images

Training and validation lines are ``<image>|<question>|<answer>`` (one file per question
category); test lines are ``<image>|<category>|<question>|<answer>`` with category one of
``modality``, ``plane``, ``organ``, ``abnormality``. ``<image>`` is the file name without
``.jpg``. In the test reference answers ``#`` separates alternative correct answers and
``( )`` marks an optional part; both are kept in the answer string for the evaluator.
Questions have their whitespace collapsed (a few published questions contain a tab).

Categories read: all four by default (``categories``); M3AE uses modality, organ and plane
only. ``splits`` chooses which of train / val / test are read; a requested split whose folder
is absent is an error.

Ids: image_id ``<name>:<image>``, qid ``<name>:<split>:<category>:<image>`` — the release asks
one question per image and category, so a second line for the same image and category is a
duplicate bad record.

Domain (our choice): the **organ system** of the image, taken from the answer to its organ
question (``skull and contents``, ``lung, mediastinum, pleura``, … — the ten organ-system
classes of the release). The question category is a property of a question, not of an image,
so it cannot be the images table's domain key. An image without an organ question (most test
images: the test set asks one question per image) has domain ``unknown``. Modality is the
coarse modality named by the image's modality answer (``xr - plain film`` -> ``x-ray``,
``ct w/contrast (iv)`` -> ``ct``, ``t2`` -> ``mri``, …), else ``unknown``.

answer_type is ``closed`` for yes/no answers and ``open`` otherwise (M3AE marks every
VQA-Med answer open); question_type is the category.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from robust_mmr_pipeline.schema import SourceTables
from robust_mmr_pipeline.sources.answers import is_yes_no, normalize_answer
from robust_mmr_pipeline.sources.common.annotations import read_text_lines
from robust_mmr_pipeline.sources.common.bad_records import (
    BadRecords,
    IngestionError,
)
from robust_mmr_pipeline.sources.common.images import ImageCatalog
from robust_mmr_pipeline.sources.common.reader import SourceReader, SourceYield
from robust_mmr_pipeline.sources.common.records import (
    IdTracker,
    clean_text,
    infer_modality,
    make_tables,
)
from robust_mmr_pipeline.textnorm import BIDI_FIX, bidi_controls, is_blank, text_problem
from robust_mmr_pipeline.typed_config import config

KIND = "vqa_med_2019"
CATEGORIES: tuple[str, ...] = ("modality", "plane", "organ", "abnormality")
CATEGORY_FILES: dict[str, str] = {
    "modality": "C1_Modality",
    "plane": "C2_Plane",
    "organ": "C3_Organ",
    "abnormality": "C4_Abnormality",
}
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
_MRI_SEQUENCES = frozenset({"t1", "t2", "flair", "t1 weighted", "t2 weighted"})

_FIX_LINE = "write the line as <image>|<question>|<answer> (test: <image>|<category>|…)"


@config(frozen=True)
class VqaMed2019Options:
    """Options of the VQA-Med 2019 reader (folders relative to the source root)."""

    train_dir: str = "ImageClef-2019-VQA-Med-Training"
    val_dir: str = "ImageClef-2019-VQA-Med-Validation"
    test_dir: str = "VQAMed2019Test"
    qa_dir: str = "QAPairsByCategory"
    train_images_dir: str = "Train_images"
    val_images_dir: str = "Val_images"
    test_images_dir: str = "VQAMed2019_Test_Images"
    test_file: str = "VQAMed2019_Test_Questions_w_Ref_Answers.txt"
    image_extension: str = ".jpg"
    categories: tuple[str, ...] = CATEGORIES
    splits: tuple[str, ...] = SPLIT_NAMES

    def __post_init__(self) -> None:
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown or not self.categories:
            raise ValueError(f"categories must be a non-empty subset of {list(CATEGORIES)}")
        if [s for s in self.splits if s not in SPLIT_NAMES] or not self.splits:
            raise ValueError(f"splits must be a non-empty subset of {list(SPLIT_NAMES)}")


def _modality_of_answer(answer: str) -> str | None:
    """The coarse modality named by a modality-question answer (None for yes/no etc.)."""
    if answer in _MRI_SEQUENCES:
        return "mri"
    words = answer.split(" - ", maxsplit=1)[0].split()
    prefix = words[0] if words else ""
    by_prefix = {
        "xr": "x-ray",
        "ct": "ct",
        "cta": "ct",
        "mr": "mri",
        "mra": "mri",
        "us": "ultrasound",
        "us-d": "ultrasound",
        "an": "angiography",
        "venogram": "angiography",
        "nm": "nuclear",
        "pet": "nuclear",
        "bas": "fluoroscopy",
        "ugi": "fluoroscopy",
        "be": "fluoroscopy",
        "sbft": "fluoroscopy",
    }
    if prefix in by_prefix:
        return by_prefix[prefix]
    return infer_modality(answer) if not is_yes_no(answer) else None


@dataclass(frozen=True)
class _Line:
    path: Path
    number: int
    split: str
    category: str
    image: str
    question: str
    answer: str


def _parse_lines(
    path: Path, split: str, category: str | None, name: str, bad: BadRecords
) -> list[_Line]:
    """Lines of one QA file; ``category`` None means the test format with a category field."""
    expected = 3 if category is not None else 4
    parsed: list[_Line] = []
    for number, line in read_text_lines(path, name):
        parts = [p.strip() for p in line.split("|")]
        label = f"line {number}"
        if bidi_controls(line):
            bad.report(path, label, f"malformed line: {text_problem(line, 'the line')}", BIDI_FIX)
            continue
        if len(parts) != expected or any(is_blank(p) for p in parts):
            bad.report(
                path,
                label,
                f"malformed line: expected {expected} non-empty '|'-separated fields, found "
                f"{len(parts)}",
                _FIX_LINE,
            )
            continue
        if category is None:
            image, line_category, question, answer = parts
            line_category = line_category.lower()
            if line_category not in CATEGORIES:
                bad.report(
                    path,
                    label,
                    f"malformed line: category {line_category!r} is not one of {list(CATEGORIES)}",
                    _FIX_LINE,
                )
                continue
        else:
            image, question, answer = parts
            line_category = category
        parsed.append(_Line(path, number, split, line_category, image, question, answer))
    return parsed


def _declare(opts: VqaMed2019Options) -> SourceYield:
    """VQA records; domain = the organ system named by the image's organ answer (data)."""
    return SourceYield(tables=frozenset({"vqa"}))


def _read(root: Path, name: str, opts: VqaMed2019Options, bad: BadRecords) -> SourceTables:
    """Read a VQA-Med 2019 copy as unified tables (see the module docstring)."""
    folders = {
        "train": (opts.train_dir, opts.train_images_dir, "train"),
        "val": (opts.val_dir, opts.val_images_dir, "val"),
        "test": (opts.test_dir, opts.test_images_dir, None),
    }
    lines: list[_Line] = []
    images_dirs: dict[str, str] = {}
    for split in SPLIT_NAMES:
        if split not in opts.splits:
            continue
        folder, images_dir, suffix = folders[split]
        if not (root / folder).is_dir():
            raise IngestionError(
                f"{name}: folder {root / folder} for split {split!r} does not exist. Fix: "
                f"unzip the release there, set the `{split}_dir` option, or leave {split!r} "
                "out of the `splits` option."
            )
        images_dirs[split] = f"{folder}/{images_dir}"
        if suffix is None:
            test_lines = _parse_lines(root / folder / opts.test_file, split, None, name, bad)
            lines += [line for line in test_lines if line.category in opts.categories]
        else:
            for category in opts.categories:
                file = f"{CATEGORY_FILES[category]}_{suffix}.txt"
                lines += _parse_lines(
                    root / folder / opts.qa_dir / file, split, category, name, bad
                )

    catalog = ImageCatalog(root, bad)
    qids = IdTracker(bad, "qid")
    organs: dict[str, str] = {}
    modalities: dict[str, str] = {}
    vqa: list[dict[str, Any]] = []
    for line in lines:
        label = f"line {line.number} ({line.image})"
        qid = f"{name}:{line.split}:{line.category}:{line.image}"
        if not qids.first(qid, line.path, label):
            continue
        answer = normalize_answer(line.answer)
        if not answer:
            bad.report(line.path, label, "malformed line: answer is blank", _FIX_LINE)
            continue
        image_id = f"{name}:{line.image}"
        rel_path = PurePosixPath(images_dirs[line.split]) / f"{line.image}{opts.image_extension}"
        if not catalog.add(image_id, rel_path, label, annotation=line.path):
            continue
        if line.category == "organ":
            organs.setdefault(image_id, answer)
        elif line.category == "modality":
            modality = _modality_of_answer(answer)
            if modality is not None:
                modalities.setdefault(image_id, modality)
        vqa.append(
            {
                "qid": qid,
                "image_id": image_id,
                "question": clean_text(line.question),
                "answer": answer,
                "answer_type": "closed" if answer in ("yes", "no") else "open",
                "question_type": line.category,
                "split": line.split,
            }
        )
    for image_id, organ in organs.items():
        catalog.update(image_id, organ=organ, domain=organ)
    for image_id, modality in modalities.items():
        catalog.update(image_id, modality=modality)
    return make_tables(bad, images=catalog.frame(), vqa=vqa)


READER = SourceReader(KIND, VqaMed2019Options, _declare, _read)
read = READER.read
yields = READER.yields
