"""``kedro run --env vqa_med_2019 --pipelines published`` end to end on a synthetic release of
VQA-Med 2019's size, timed node by node.

The release is written in VQA-Med 2019's published layout (the three unzipped folders,
``QAPairsByCategory`` files of ``<image>|<question>|<answer>`` lines, the test file with its
category): 3,200 / 500 / 500 images, four questions per train and val image (modality, plane,
organ, abnormality), one per test image: 12,800 / 2,000 / 500 QA. Images (JPEG) carry their
modality / organ / plane / finding in the pixels; questions come in many phrasings; the
abnormality answers are a long tail. The project is copied into the work folder (as the tests'
``kedro_project``) and the pipeline runs there in a child process under ``--timeout-min``; the
node table (seconds per node, in run order) is written as the run goes, so a run stopped at
the limit still reports how far it got.

    python benchmarks/bench_published.py --out data/08_reporting/bench_published.json
    python benchmarks/bench_published.py --quick        # a tiny release, conf/test sizes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TRAIN = "ImageClef-2019-VQA-Med-Training"
VAL = "ImageClef-2019-VQA-Med-Validation"
TEST = "VQAMed2019Test"
CATEGORY_FILES = {"modality": "C1_Modality", "plane": "C2_Plane", "organ": "C3_Organ",
                  "abnormality": "C4_Abnormality"}  # fmt: skip
ORGANS = ("skull and contents", "lung, mediastinum, pleura", "gastrointestinal",
          "spine and contents", "musculoskeletal", "genitourinary", "heart and great vessels",
          "face, sinuses, and neck", "breast", "vascular and lymphatic")  # fmt: skip
MODALITIES = ("ct w/contrast (iv)", "ct noncontrast", "mr - t2 weighted", "mr - t1w w/gadolinium",
              "xr - plain film", "us - ultrasound", "an - angiogram", "mr - flair")  # fmt: skip
PLANES = ("axial", "sagittal", "coronal", "ap", "pa", "lateral")
QUESTIONS = {
    "modality": ("what modality is shown?", "what imaging method was used?",
                 "which image modality is this?", "how was this image taken?",
                 "what type of imaging is this?", "what kind of scan is this?"),
    "plane": ("in what plane is this image oriented?", "which plane is this image taken?",
              "what plane is this?", "what is the plane of this image?"),
    "organ": ("what organ system is shown in this image?", "what part of the body is imaged?",
              "which organ system is displayed?", "what is the organ principally shown?"),
    "abnormality": ("what is abnormal in the image?", "what is the primary abnormality?",
                    "what is most alarming about this image?", "is this image abnormal?"),
}  # fmt: skip


def _pixels(rng: np.random.Generator, size: int, truth: tuple[int, int, int, int]) -> np.ndarray:
    modality, organ, plane, finding = truth
    grid = np.linspace(0, 1, size)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    texture = np.sin((modality + 1) * 5 * (xx if plane % 2 else yy))
    cy, cx = 0.15 + 0.07 * organ, 0.3 + 0.4 * (organ % 2)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
    spot = 0.0
    if finding >= 0:
        sy, sx = (finding % 7) / 8 + 0.1, (finding % 5) / 6 + 0.1
        spot = np.exp(-((yy - sy) ** 2 + (xx - sx) ** 2) / 0.002)
    pixels = 90 + 30 * texture + 80 * blob + 70 * spot + rng.normal(0, 8, (size, size))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _line(rng: np.random.Generator, category: str, truth: tuple[int, int, int, int]) -> tuple:
    modality, organ, plane, finding = truth
    phrasings = QUESTIONS[category]
    question = phrasings[min(int(rng.zipf(1.6)) - 1, len(phrasings) - 1)]
    if category == "abnormality" and question.startswith("is "):
        answer = "yes" if finding >= 0 else "no"
    else:
        answer = {"modality": MODALITIES[modality], "plane": PLANES[plane],
                  "organ": ORGANS[organ]}.get(category)  # fmt: skip
        answer = answer or ("normal" if finding < 0 else f"finding {finding}")
    return question, answer


def write_release(root: Path, n_train: int, n_val: int, n_test: int, size: int, seed: int) -> dict:
    """VQA-Med 2019's three folders under ``root``; returns the QA counts per split."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    index = 0
    folders = ((TRAIN, "Train_images", "train", n_train), (VAL, "Val_images", "val", n_val),
               (TEST, "VQAMed2019_Test_Images", "test", n_test))  # fmt: skip
    for folder, images_dir, split, count in folders:
        (root / folder / images_dir).mkdir(parents=True, exist_ok=True)
        lines: dict[str, list[str]] = {category: [] for category in CATEGORY_FILES}
        for number in range(count):
            name = f"synpic{10000 + index}"
            index += 1
            truth = (int(rng.integers(len(MODALITIES))), int(rng.integers(len(ORGANS))),
                     int(rng.integers(len(PLANES))),
                     -1 if rng.random() < 0.2 else int(rng.zipf(1.3) % 300))  # fmt: skip
            Image.fromarray(_pixels(rng, size, truth)).save(
                root / folder / images_dir / f"{name}.jpg", quality=90
            )
            # the test set asks one question per image, categories in turn
            asked = [list(CATEGORY_FILES)[number % 4]] if split == "test" else CATEGORY_FILES
            for category in asked:
                question, answer = _line(rng, category, truth)
                prefix = f"{name}|{category}" if split == "test" else name
                lines[category].append(f"{prefix}|{question}|{answer}")
        counts[split] = sum(map(len, lines.values()))
        if split == "test":
            text = "\r\n".join(row for rows in lines.values() for row in rows) + "\r\n"
            (root / folder / "VQAMed2019_Test_Questions_w_Ref_Answers.txt").write_text(text)
            continue
        for category, rows in lines.items():
            path = root / folder / "QAPairsByCategory" / f"{CATEGORY_FILES[category]}_{split}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\r\n".join(rows) + "\r\n")
    return counts


def copy_project(destination: Path) -> Path:
    """What a Kedro session needs (pyproject, conf, src, empty data layers), as the tests do."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "pyproject.toml", destination / "pyproject.toml")
    shutil.copytree(REPO / "conf", destination / "conf", dirs_exist_ok=True)
    shutil.copytree(REPO / "src", destination / "src", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for layer in (REPO / "data").iterdir():
        if layer.is_dir():
            (destination / "data" / layer.name).mkdir(parents=True, exist_ok=True)
    (destination / "conf" / "local").mkdir(parents=True, exist_ok=True)
    return destination


def child(project: Path, params: dict[str, Any], nodes_file: Path) -> None:
    """Run the pipeline in this process, appending each finished node's seconds to
    ``nodes_file`` (one JSON line per node)."""
    from kedro.framework.hooks import hook_impl
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    class NodeClock:
        def __init__(self) -> None:
            self.started: dict[str, float] = {}

        @hook_impl
        def before_node_run(self, node: Any) -> None:
            self.started[node.name] = time.perf_counter()

        @hook_impl
        def after_node_run(self, node: Any) -> None:
            seconds = time.perf_counter() - self.started.pop(node.name, time.perf_counter())
            with nodes_file.open("a") as handle:
                handle.write(json.dumps({"node": node.name, "seconds": round(seconds, 1)}) + "\n")

    os.chdir(project)
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env="vqa_med_2019",
                             runtime_params=params) as session:  # fmt: skip
        session._hook_manager.register(NodeClock())  # a benchmark's clock, not the project's
        session.run(pipeline_name="published")


def quick_params() -> dict[str, Any]:
    """conf/test's model and step sizes (as tests/pipelines/published do)."""
    import yaml

    test: dict[str, Any] = {}
    for name in ("pretrain", "finetune", "evaluation"):
        test.update(yaml.safe_load((REPO / f"conf/test/parameters_{name}.yml").read_text()))
    return {
        "pretrain": {**test["pretrain"], "register_model": False},
        "finetune": {**test["finetune"],
                     "trainer": {**test["finetune"]["trainer"], "max_steps": 4, "batch_size": 8}},
        "evaluation": test["evaluation"],
        "domain_split": {"fractions": {"train": 0.5, "val": 0.3, "test": 0.2}},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/08_reporting/bench_published.json"))
    parser.add_argument("--images", type=int, nargs=3, default=(3200, 500, 500),
                        metavar=("TRAIN", "VAL", "TEST"))  # fmt: skip
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-min", type=float, default=40.0)
    parser.add_argument("--quick", action="store_true", help="a tiny release, conf/test sizes")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep --workdir's files")
    parser.add_argument("--child", nargs=3, metavar=("PROJECT", "PARAMS", "NODES"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.child:
        project, params, nodes = args.child
        child(Path(project), json.loads(Path(params).read_text()), Path(nodes))
        return {}
    if args.quick:
        args.images, args.image_size = (40, 12, 16), 40
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="bench_published_"))).resolve()
    try:
        started = time.perf_counter()
        counts = write_release(workdir / "release", *args.images, args.image_size, args.seed)
        project = copy_project(workdir / "project")
        params = {"ingestion": {"roots": {"vqa_med_2019": str(workdir / "release")}},
                  **(quick_params() if args.quick else {})}  # fmt: skip
        (workdir / "params.json").write_text(json.dumps(params))
        nodes_file = workdir / "nodes.jsonl"
        nodes_file.unlink(missing_ok=True)
        prepared = time.perf_counter()
        env = {**os.environ, "PYTHONPATH": str(project / "src")}
        command = [sys.executable, str(Path(__file__).resolve()), "--child", str(project),
                   str(workdir / "params.json"), str(nodes_file)]  # fmt: skip
        with (workdir / "run.log").open("w") as log:
            try:
                proc = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=args.timeout_min * 60, check=False)  # fmt: skip
                returncode: int | None = proc.returncode
            except subprocess.TimeoutExpired:
                returncode = None
        seconds = time.perf_counter() - prepared
        nodes = [json.loads(line) for line in nodes_file.read_text().splitlines()] if (
            nodes_file.is_file()) else []  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "benchmark": "published",
        "quick": bool(args.quick),
        "release": {"images": list(args.images), "qa": counts, "image_size": args.image_size},
        "prepare_seconds": round(prepared - started, 1),
        "finished": returncode == 0,
        "returncode": returncode,
        "timed_out": returncode is None,
        "run_seconds": round(seconds, 1),
        "nodes": nodes,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "target <= 25 min": returncode == 0 and seconds <= 25 * 60,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    state = "finished" if returncode == 0 else ("stopped at the limit" if returncode is None
                                                 else f"failed ({returncode})")  # fmt: skip
    print(f"published: {state} after {seconds:.0f} s, {len(nodes)} nodes done")
    for node in nodes:
        print(f"  {node['node']:<60} {node['seconds']:8.1f} s")
    return result


if __name__ == "__main__":
    main()
