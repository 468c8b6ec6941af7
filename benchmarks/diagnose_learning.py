"""Learning diagnostics on the project's own data and configuration (`make diagnose`).

Run after the upstream pipelines (`make run`, or `kedro run --pipelines ingestion,validation,
domain_split,pretrain`): it reads the split tables, the image cache and the tokenizer they
wrote, and the model / trainer settings of ``conf/base`` (+ ``--env``). Three checks:

1. **Fixed-batch memorisation**: each task's model (same architecture, from scratch) trained on
   one fixed batch of 64 train rows; training accuracy must reach ~100 % (if it cannot, the
   wiring is broken: a detached head, a wrong label map, a dead learning rate).
2. **Learning-rate range test** (Smith 2017): the learning rate grows exponentially from
   ``1e-5`` to ``1e-1`` over the steps of one short run, for pre-training (the configured
   preset) and for VQA fine-tuning; the loss (smoothed) against the learning rate tells where
   learning starts, where it is fastest and where it diverges.
3. **ITM pooling**: pre-training ITM loss after a short run with the M3AE pooler (first token)
   and with the token-mean pooler (``fusion.pooling``): from-scratch encoders give nearly the
   same CLS vector for every sample, so the CLS-pooled ITM head starts on a plateau at ln 2.

Writes ``--out`` (JSON) and a PNG of the range tests beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from robust_mmr_pipeline.engine import ImageCache, PairCollator, PairDataset, domain_vocabulary
from robust_mmr_pipeline.model import MMRModel
from robust_mmr_pipeline.model.presets import deep_merge
from robust_mmr_pipeline.model.views import TextDegrader
from robust_mmr_pipeline.recipes.finetune import _dataset, split_task_options, task_rows
from robust_mmr_pipeline.recipes.pretrain import build_model_config, select_training_pairs
from robust_mmr_pipeline.tasks import TaskCollator, TaskModel

TASK_TABLES = {"vqa": "split_vqa", "classification": "split_classification"}


def load_project(env: str) -> dict[str, Any]:
    """Parameters and the upstream outputs, through a Kedro session of this project."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(Path.cwd())
    with KedroSession.create(project_path=Path.cwd(), env=env) as session:
        context = session.load_context()
        catalog = context.catalog
        params = context.params
        tables = {name: catalog.load(name) for name in ("split_vqa", "split_classification",
                                                         "split_pairs")}  # fmt: skip
        return {
            "params": params,
            "tables": tables,
            "tokenizer": catalog.load("tokenizer"),
            "cache": ImageCache(catalog.load("image_cache")["cache_dir"]),
        }


def _groups(model: Any, lr: float, finetune: dict[str, Any]) -> list[dict[str, Any]]:
    trainer = finetune["trainer"]
    return model.param_groups(float(trainer["weight_decay"]), float(trainer["head_lr_mult"]), lr)


def fixed_batch_memorisation(project: dict[str, Any], steps: int) -> dict[str, Any]:
    """Per task: training accuracy on one fixed batch of 64 rows, every 10 steps."""
    params, cache, tokenizer = project["params"], project["cache"], project["tokenizer"]
    finetune = params["finetune"]
    config = build_model_config(
        params["pretrain"]["preset"],
        params["pretrain"]["size"],
        params["pretrain"].get("model", {}),
        tokenizer,
    )
    out: dict[str, Any] = {}
    for task, table in TASK_TABLES.items():
        rows = task_rows(project["tables"][table], finetune["protocol"], "train").head(64)
        labels = sorted(rows["answer" if task == "vqa" else "label"].astype(str).unique())
        options, _extras = split_task_options(finetune["task_options"].get(task, {}))
        torch.manual_seed(0)
        model = TaskModel.from_scratch(config, task, label_names=labels, options=options)
        dataset = _dataset(task, rows, cache, labels)
        batch = TaskCollator(tokenizer, config.text.max_length, padding="longest")(
            [dataset[i] for i in range(len(dataset))]
        )
        optimizer = torch.optim.AdamW(_groups(model, float(finetune["trainer"]["lr"]), finetune))
        curve = []
        for step in range(1, steps + 1):
            output = model(batch)
            output.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step % 10 == 0 or step == steps:
                curve.append({"step": step, "acc": output.metrics["acc"],
                              "loss": float(output.loss)})  # fmt: skip
        out[task] = {"final_train_accuracy": curve[-1]["acc"], "curve": curve}
        print(f"  memorise {task}: accuracy {curve[-1]['acc']:.3f} after {steps} steps")
    return out


def _range_test(
    step_fn: Any, model: Any, groups: list[dict[str, Any]], steps: int
) -> tuple[list[dict[str, float]], bool]:
    """Exponential learning-rate sweep 1e-5 -> 1e-1; smoothed loss per step, and whether the
    loss diverged (the sweep stops there)."""
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.98))
    mults = [g["lr"] / groups[0]["lr"] for g in optimizer.param_groups]
    records, smooth = [], None
    for step in range(steps):
        lr = 1e-5 * (1e4) ** (step / max(steps - 1, 1))
        for group, mult in zip(optimizer.param_groups, mults, strict=True):
            group["lr"] = lr * mult
        loss = step_fn(model, step / steps)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(loss)
        smooth = value if smooth is None else 0.9 * smooth + 0.1 * value
        records.append({"lr": lr, "loss": value, "smoothed": smooth})
        lowest = min(r["smoothed"] for r in records)
        if not math.isfinite(value) or (step > 10 and smooth > 4 * lowest):
            return records, True
    return records, False


def _summarise(sweep: tuple[list[dict[str, float]], bool]) -> dict[str, Any]:
    records, diverged = sweep
    frame = pd.DataFrame(records)
    best = frame.loc[frame["smoothed"].idxmin()]
    return {
        "lr_at_min_loss": float(best["lr"]),
        "min_smoothed_loss": float(best["smoothed"]),
        "lr_diverged": float(frame["lr"].iloc[-1]) if diverged else None,
        "suggested_lr": float(best["lr"]) / 10.0,  # the usual "a decade below the minimum"
        "curve": records,
    }


def lr_range_tests(project: dict[str, Any], steps: int) -> dict[str, Any]:
    params, cache, tokenizer = project["params"], project["cache"], project["tokenizer"]
    pretrain, finetune = params["pretrain"], params["finetune"]
    config = build_model_config(
        pretrain["preset"], pretrain["size"], pretrain.get("model", {}), tokenizer
    )
    batch_size = int(pretrain["trainer"]["batch_size"])
    pairs = select_training_pairs(
        project["tables"]["split_pairs"], pretrain["protocol"], list(pretrain["text_kinds"])
    )
    dataset = PairDataset(pairs, cache, domains=domain_vocabulary(pairs["domain"].tolist()))
    collate = PairCollator(
        tokenizer, config.text.max_length, "longest", TextDegrader.for_model(config)
    )
    generator = torch.Generator().manual_seed(0)

    def pretrain_step(model: Any, _progress: float) -> torch.Tensor:
        index = torch.randint(len(dataset), (batch_size,), generator=generator).tolist()
        # progress fixed at 1: every term at full weight from the first step. With the real
        # progress the robust terms' ramp raised the loss as the lr grew, and the sweep read
        # that as divergence (minimum at the first lr).
        return model(collate([dataset[i] for i in index]), progress=1.0).loss

    torch.manual_seed(0)
    model = MMRModel(config)
    trainer = pretrain["trainer"]
    groups = model.param_groups(float(trainer["weight_decay"]), float(trainer["head_lr_mult"]),
                                1e-5)  # fmt: skip
    out = {"pretrain": _summarise(_range_test(pretrain_step, model, groups, steps))}
    print(f"  range test pretrain: min loss at lr {out['pretrain']['lr_at_min_loss']:.2e}")

    rows = task_rows(project["tables"]["split_vqa"], finetune["protocol"], "train")
    labels = sorted(rows["answer"].astype(str).unique())
    options, _extras = split_task_options(finetune["task_options"].get("vqa", {}))
    torch.manual_seed(0)
    task_model = TaskModel.from_scratch(config, "vqa", label_names=labels, options=options)
    vqa = _dataset("vqa", rows, cache, labels)
    task_collate = TaskCollator(tokenizer, config.text.max_length, padding="longest")
    ft_batch = int(finetune["trainer"]["batch_size"])

    def finetune_step(model: Any, _progress: float) -> torch.Tensor:
        index = torch.randint(len(vqa), (ft_batch,), generator=generator).tolist()
        return model(task_collate([vqa[i] for i in index])).loss

    out["finetune_vqa"] = _summarise(
        _range_test(finetune_step, task_model, _groups(task_model, 1e-5, finetune), steps)
    )
    print(f"  range test VQA: min loss at lr {out['finetune_vqa']['lr_at_min_loss']:.2e}")
    return out


def itm_pooling(project: dict[str, Any], steps: int) -> dict[str, Any]:
    """ITM loss of the mmr preset after ``steps`` with CLS vs mean pooling (same seed)."""
    params, cache, tokenizer = project["params"], project["cache"], project["tokenizer"]
    pretrain = params["pretrain"]
    trainer = pretrain["trainer"]
    pairs = select_training_pairs(
        project["tables"]["split_pairs"], pretrain["protocol"], list(pretrain["text_kinds"])
    )
    dataset = PairDataset(pairs, cache, domains=domain_vocabulary(pairs["domain"].tolist()))
    out = {}
    for pooling in ("cls", "mean"):
        overrides = deep_merge(pretrain.get("model", {}), {"fusion": {"pooling": pooling}})
        config = build_model_config("mmr", pretrain["size"], overrides, tokenizer)
        collate = PairCollator(tokenizer, config.text.max_length, "longest")
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        model = MMRModel(config)
        lr = float(trainer["lr"])
        optimizer = torch.optim.AdamW(
            model.param_groups(float(trainer["weight_decay"]), float(trainer["head_lr_mult"]), lr),
            betas=(0.9, 0.98),
        )
        itm = []
        for step in range(steps):
            index = torch.randint(len(dataset), (int(trainer["batch_size"]),),
                                  generator=generator).tolist()  # fmt: skip
            output = model(collate([dataset[i] for i in index]), progress=step / steps)
            output.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            itm.append(float(output.losses["itm"]))
        out[pooling] = {"itm_last_20": float(np.mean(itm[-20:])), "ln2": math.log(2)}
        print(
            f"  ITM with {pooling} pooling after {steps} steps: {out[pooling]['itm_last_20']:.3f}"
        )
    return out


def figure(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key in zip(axes, ("pretrain", "finetune_vqa"), strict=True):
        frame = pd.DataFrame(results["lr_range"][key]["curve"])
        ax.plot(frame["lr"], frame["smoothed"])
        ax.axvline(results["lr_range"][key]["suggested_lr"], ls="--", color="grey")
        ax.set_xscale("log")
        ax.set_xlabel("base learning rate")
        ax.set_ylabel("smoothed loss")
        ax.set_title(f"LR range test: {key}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="local")
    parser.add_argument("--out", type=Path, default=Path("data/08_reporting/learning.json"))
    parser.add_argument("--memorise-steps", type=int, default=150)
    parser.add_argument("--range-steps", type=int, default=150)
    parser.add_argument("--itm-steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.perf_counter()
    project = load_project(args.env)
    results = {
        "memorisation": fixed_batch_memorisation(project, args.memorise_steps),
        "lr_range": lr_range_tests(project, args.range_steps),
        "itm_pooling": itm_pooling(project, args.itm_steps),
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    figure(results, args.out.with_suffix(".png"))
    print(f"Diagnostics written to {args.out} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
