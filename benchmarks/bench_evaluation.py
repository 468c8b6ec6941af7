"""Evaluation of one protocol on a release the size of VQA-Med 2019, against its fine-tuning time.

A synthetic VQA release (default 15,000 QA over 4,000 images, 64 px, five sites, one held out;
VQA-Med 2019's split: 76 / 12 / 12 % of the images, one question per in-domain test image):
images whose modality / organ / plane / finding are drawn into the pixels, questions in many
phrasings (a long tail of rare question texts, as in VQA-Med), a long-tailed abnormality answer
set. One VQA model is fine-tuned as a pre-trained backbone is (conf/base's LP-FT and trainer,
the vqa_med_2019 env's steps) from a random "pre-trained" backbone; then the evaluation recipe
scores it (twice: as ours and as the from-scratch reference), the frozen-backbone probe and
the trivial baselines on the clean in-/cross-domain test sets and the 18 perturbed sets of
the vqa_med_2019 env, with the per-stage time table of
:class:`~robust_mmr_pipeline.recipes.evaluation_clock.StageClock`.

    python benchmarks/bench_evaluation.py --out data/08_reporting/bench_evaluation.json
    python benchmarks/bench_evaluation.py --quick            # a tiny version (seconds)

``--workdir DIR --keep`` leaves the release, checkpoints and ``results.parquet`` in DIR;
``--evaluate-only DIR`` re-runs the evaluation alone on them (e.g. with another checkout on
PYTHONPATH, to compare its result rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
MODALITIES = ("ct", "mri", "x-ray", "ultrasound", "angiogram", "pet")
ORGANS = ("skull", "spine", "chest", "abdomen", "pelvis", "knee", "hand", "heart", "neck",
          "breast")  # fmt: skip
PLANES = ("axial", "sagittal", "coronal")
SITES = ("site_a", "site_b", "site_c", "site_d", "held_out")
PERTURBATIONS = {"image": ["gaussian_noise", "bias_field", "contrast", "jpeg"],
                 "text": ["typos", "word_dropout"]}  # fmt: skip
SEVERITIES = (1, 3, 5)
OPENERS = ("", "please tell: ", "in this image, ", "looking at the scan, ", "radiology: ")


def _phrasings(stem: str, variants: tuple[str, ...]) -> list[str]:
    return [f"{opener}{variant.format(stem=stem)}" for opener in OPENERS for variant in variants]


QUESTIONS: dict[str, list[str]] = {
    "modality": _phrasings("modality", ("what {stem} is shown?", "which {stem} was used?",
                                        "what is the {stem} of this image?",
                                        "what kind of {stem} is this?")),
    "organ": _phrasings("organ", ("what {stem} is shown?", "which {stem} system is imaged?",
                                  "what part of the body is the {stem} in?")),
    "plane": _phrasings("plane", ("in which {stem} was this taken?", "what {stem} is this?",
                                  "which {stem} is the image in?")),
    "abnormality": _phrasings("abnormality", ("what is the {stem}?", "what is abnormal?",
                                              "what is the primary {stem} in this image?")),
    "closed": _phrasings("finding", ("is there a {stem}?", "is this image normal?")),
}  # fmt: skip


def synthetic_release(n_images: int, n_qa: int, size: int, seed: int) -> tuple:
    """``(images uint8 [N, size, size], images frame, qa frame)``."""
    rng = np.random.default_rng(seed)
    truth = pd.DataFrame({
        "image_id": [f"img{i:05d}" for i in range(n_images)],
        "modality": rng.integers(len(MODALITIES), size=n_images),
        "organ": rng.integers(len(ORGANS), size=n_images),
        "plane": rng.integers(len(PLANES), size=n_images),
        "domain": rng.choice(SITES, size=n_images, p=[0.25, 0.25, 0.2, 0.2, 0.1]),
        # a long tail of findings (Zipf), one in five images normal
        "finding": np.where(rng.random(n_images) < 0.2, -1, rng.zipf(1.3, n_images) % 400),
    })  # fmt: skip
    grid = np.linspace(0, 1, size)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    images = np.empty((n_images, size, size), dtype=np.uint8)
    for i, row in enumerate(truth.itertuples()):
        texture = np.sin((row.modality + 1) * 6 * (xx if row.plane != 1 else yy))
        cy, cx = 0.2 + 0.06 * (row.organ % 10), 0.3 + 0.4 * (row.organ % 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
        spot = 0.0
        if row.finding >= 0:
            sy, sx = (row.finding % 7) / 8 + 0.1, (row.finding % 5) / 6 + 0.1
            spot = np.exp(-((yy - sy) ** 2 + (xx - sx) ** 2) / 0.002)
        pixels = 90 + 30 * texture + 80 * blob + 70 * spot + rng.normal(0, 8, (size, size))
        images[i] = np.clip(pixels * (0.8 + 0.1 * SITES.index(row.domain)), 0, 255)
    # VQA-Med 2019's official split: 76 / 12 / 12 % of the images, the test images asked one
    # question each (500 QA), the others about four; one site held out (cross-domain test)
    truth["split"] = rng.choice(("train", "val", "test"), size=n_images, p=[0.76, 0.12, 0.12])
    single = ((truth["split"] == "test") & (truth["domain"] != "held_out")).to_numpy()
    per_image = (n_qa - single.sum()) / max((~single).sum(), 1)
    counts = np.where(single, 1, rng.poisson(per_image - 1, n_images) + 1)
    image_index = np.repeat(np.arange(n_images), counts)
    n_qa = len(image_index)
    kinds = rng.choice(list(QUESTIONS), size=n_qa, p=[0.25, 0.25, 0.2, 0.2, 0.1])
    rows = []
    for kind, index in zip(kinds, image_index, strict=True):
        image = truth.iloc[int(index)]
        phrasings = QUESTIONS[kind]
        # Zipf over phrasings: a few frequent question texts, many rare ones
        question = phrasings[min(int(rng.zipf(1.5)) - 1, len(phrasings) - 1)]
        if kind == "closed":
            answer, answer_type = ("yes" if image.finding >= 0 else "no"), "CLOSED"
        else:
            value = {"modality": MODALITIES[image.modality], "organ": ORGANS[image.organ],
                     "plane": PLANES[image.plane]}.get(kind)  # fmt: skip
            answer = value or ("normal" if image.finding < 0 else f"finding {image.finding}")
            answer_type = "OPEN"
        rows.append({"image_id": image.image_id, "question": question, "answer": answer,
                     "answer_type": answer_type, "domain": image.domain,
                     "modality": MODALITIES[image.modality]})  # fmt: skip
    return images, truth, pd.DataFrame(rows)


def split_table(qa: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """in_domain train / val / test (the release's split, the held-out site left out) and the
    cross_domain test (the held-out site's images of every split), image-disjoint."""
    split = dict(zip(truth["image_id"], truth["split"], strict=True))
    held_out = qa["domain"] == "held_out"
    in_domain = qa[~held_out].assign(protocol="in_domain")
    in_domain["split"] = in_domain["image_id"].map(split)
    cross = qa[held_out].assign(protocol="cross_domain", split="test")
    return pd.concat([in_domain, cross], ignore_index=True)


def _finetune_conf() -> tuple[dict[str, Any], dict[str, Any]]:
    import yaml

    base = yaml.safe_load((REPO / "conf/base/parameters_finetune.yml").read_text())
    env = yaml.safe_load((REPO / "conf/vqa_med_2019/parameters_finetune.yml").read_text())
    return base["finetune"], env["finetune"]


def trainer_settings(max_steps: int | None) -> dict[str, Any]:
    """conf/base's fine-tuning trainer for a pre-trained backbone, with the vqa_med_2019 env's
    overrides."""
    base, env = _finetune_conf()
    trainer = {**base["trainer"], **base["pretrained"]["trainer"], **env["trainer"]}
    trainer.update(progress_bar=False, checkpoint_every=0)
    if max_steps is not None:
        trainer.update(max_steps=max_steps, eval_every=max(1, max_steps // 2))
    return trainer


def prepare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Write the release, the image cache, a backbone and the fine-tuned model; return the
    evaluation plan's files and the fine-tuning seconds."""
    from PIL import Image

    from robust_mmr_pipeline.engine import ImageCache
    from robust_mmr_pipeline.engine.checkpoint import save_best
    from robust_mmr_pipeline.model import MMRModel
    from robust_mmr_pipeline.recipes import pretrain as pretrain_recipe
    from robust_mmr_pipeline.recipes.finetune import finetune_task, task_rows

    started = time.perf_counter()
    images, truth, qa = synthetic_release(args.images, args.qa, args.image_size, args.seed)
    folder = workdir / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, pixels in zip(truth["image_id"], images, strict=True):
        Image.fromarray(pixels).save(folder / f"{image_id}.png", compress_level=1)
    manifest = pd.DataFrame({"image_id": truth["image_id"],
                             "path": [f"{i}.png" for i in truth["image_id"]]})  # fmt: skip
    ImageCache.build(manifest, workdir / "cache", root=folder, image_size=args.image_size)
    table = split_table(qa, truth)
    table.to_parquet(workdir / "split_vqa.parquet", index=False)
    train = task_rows(table, "in_domain", "train")
    texts = (train["question"] + " " + train["answer"]).tolist()
    tokenizer = pretrain_recipe.fit_tokenizer(texts, 4096, 2, 48)
    overrides = {"vision": {"patch_size": 16, "image_size": args.image_size}}
    config = pretrain_recipe.build_model_config("robust_mmr", "small", overrides, tokenizer)
    import torch

    torch.manual_seed(args.seed)
    save_best(workdir / "backbone", 0, MMRModel(config), {}, tokenizer, True)
    backbone = str(next((workdir / "backbone").glob("step-*")))
    prepared = time.perf_counter()
    summary = finetune_task(
        "vqa", train, task_rows(table, "in_domain", "val"), str(workdir / "cache"), tokenizer,
        backbone, None, _finetune_conf()[0]["task_options"]["vqa"],
        trainer_settings(args.steps), str(workdir / "finetune"), log_to_mlflow=False,
        linear_probe_epochs=args.probe_epochs,
        linear_probe_lr=_finetune_conf()[0]["pretrained"]["linear_probe_lr"],
    )  # fmt: skip
    finetuned = time.perf_counter()
    plan = {
        "checkpoint": summary.checkpoint,
        "backbone": backbone,
        "finetune_seconds": round(finetuned - prepared, 1),
        "finetune_steps": int(trainer_settings(args.steps)["max_steps"]),
        "linear_probe_epochs": args.probe_epochs,
        "prepare_seconds": round(prepared - started, 1),
        "rows": {
            f"{protocol}/{split}": len(part)
            for (protocol, split), part in table.groupby(["protocol", "split"])
        },
        "question_texts": int(train["question"].nunique()),
        "answers": int(train["answer"].nunique()),
    }
    (workdir / "plan.json").write_text(json.dumps(plan, indent=2))
    return plan


def evaluate(workdir: Path, n_boot: int) -> dict[str, Any]:
    """The evaluation recipe on the prepared release; its stage table and seconds."""
    from robust_mmr_pipeline.pipelines.evaluation.params import EvaluationParams

    try:
        from robust_mmr_pipeline.recipes import evaluation_run as recipe
        from robust_mmr_pipeline.recipes.evaluation_clock import StageClock
    except ImportError:  # a checkout from before the stage clock
        from robust_mmr_pipeline.recipes import evaluate as recipe  # type: ignore[no-redef]

        StageClock = None  # type: ignore[assignment,misc]
    plan = json.loads((workdir / "plan.json").read_text())
    table = pd.read_parquet(workdir / "split_vqa.parquet")
    sets = pd.DataFrame([
        {"protocol": "in_domain", "base_split": "test", "modality": modality,
         "perturbation": name, "severity": severity, "seed": 0}
        for modality, names in PERTURBATIONS.items() for name in names
        for severity in SEVERITIES
    ])  # fmt: skip
    params = EvaluationParams(tasks=["vqa"], image_perturbations=PERTURBATIONS["image"],
                              text_perturbations=PERTURBATIONS["text"],
                              severities=list(SEVERITIES), n_boot=n_boot,
                              log_to_mlflow=False)  # fmt: skip
    evaluation_plan = recipe.EvaluationPlan(
        tables={"vqa": table},
        checkpoints={"vqa": {"ours": plan["checkpoint"], "from_scratch": plan["checkpoint"]}},
        train_protocol="in_domain",
        backbone_checkpoint=plan["backbone"],
    )
    started = time.perf_counter()
    if StageClock is None:
        results = recipe.evaluate_all(evaluation_plan, sets, str(workdir / "cache"), params)
        stages: list[dict[str, Any]] = []
    else:
        clock = StageClock()
        results = recipe.evaluate_all(evaluation_plan, sets, str(workdir / "cache"), params, clock)
        stages = clock.table()
    seconds = time.perf_counter() - started
    results.to_parquet(workdir / "results.parquet", index=False)
    return {"evaluation_seconds": round(seconds, 1), "stages": stages,
            "result_rows": len(results)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/08_reporting/bench_evaluation.json"))
    parser.add_argument("--qa", type=int, default=15000)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps (None: env)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument(
        "--probe-epochs",
        type=int,
        default=None,
        help="LP-FT head epochs (None: conf/base finetune.pretrained)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a tiny release (smoke test)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep --workdir's files")
    parser.add_argument("--evaluate-only", type=Path, default=None, metavar="DIR")
    args = parser.parse_args(argv)
    if args.probe_epochs is None:
        args.probe_epochs = int(_finetune_conf()[0]["pretrained"]["linear_probe_epochs"])
    if args.quick:
        args.qa, args.images, args.image_size = 400, 120, 32
        args.steps, args.n_boot = args.steps or 4, min(args.n_boot, 100)
        args.probe_epochs = min(args.probe_epochs, 2)
    import logging

    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.evaluate_only is not None:
        result = {"benchmark": "evaluation", **evaluate(args.evaluate_only, args.n_boot)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        return result
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_evaluation_"))
    try:
        plan = prepare(args, workdir)
        evaluation = evaluate(workdir, args.n_boot)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    ratio = evaluation["evaluation_seconds"] / max(plan["finetune_seconds"], 1e-9)
    result = {
        "benchmark": "evaluation",
        "quick": bool(args.quick),
        "config": {"qa": args.qa, "images": args.images, "image_size": args.image_size,
                   "n_boot": args.n_boot, "threads": args.threads,
                   "perturbed_sets": sum(map(len, PERTURBATIONS.values())) * len(SEVERITIES)},
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        **{k: v for k, v in plan.items() if k not in ("checkpoint", "backbone")},
        **evaluation,
        "evaluation_over_finetune": round(ratio, 3),
        "targets": {"evaluation <= finetune": ratio <= 1.0,
                    "evaluation <= 180 s": evaluation["evaluation_seconds"] <= 180},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"fine-tuning {plan['finetune_seconds']} s ({plan['finetune_steps']} steps), "
          f"evaluation {evaluation['evaluation_seconds']} s (ratio {ratio:.2f})")  # fmt: skip
    for stage in evaluation["stages"]:
        print(f"  {stage['task']:>4} {stage['stage']:<22} {stage['seconds']:8.1f} s")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
