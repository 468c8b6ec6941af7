"""Fine-tuning recipe: VQA, image–text classification and retrieval.

:func:`finetune_task` trains a :class:`~robust_mmr_pipeline.tasks.TaskModel` on the train rows
of one task, starting from a pre-training checkpoint (or from scratch: the no-pretraining
baseline), evaluates the VALIDATION rows every ``eval_every`` steps and keeps the checkpoint
with the best validation metric under ``<output_dir>/best/``. Test rows are never passed in:
model selection sees validation only (:func:`robust_mmr_pipeline.tasks.select_best`). The
answer / label vocabulary comes from the train rows alone.

:func:`finetune_all` does it for every configured task, from the pre-trained backbone or from
scratch (the no-pretraining reference). Scoring (validation here, test in the evaluation
pipeline) is :class:`robust_mmr_pipeline.recipes.evaluate.TaskEvaluator`.

Selection and main metrics per task: :mod:`robust_mmr_pipeline.tasks.registry`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robust_mmr_pipeline.tasks.registry import task_spec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneSummary:
    """What one fine-tuning run leaves behind (JSON-safe through ``as_dict``).

    ``checkpoint`` is the best-on-validation checkpoint folder, ``best_step`` its step,
    ``val_metrics`` its validation metrics and ``history`` every validation record
    (``{"step", "val/<metric>", ...}``) in training order.
    """

    task: str
    checkpoint: str
    best_step: int
    selection_metric: str
    val_metrics: dict[str, float]
    history: list[dict[str, float]]
    num_classes: int = 0
    train_rows: int = 0
    val_rows: int = 0
    train_time_s: float = 0.0
    from_scratch: bool = False
    linear_probe: dict[str, float] | None = None
    wise_ft: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- rows


def task_rows(table: pd.DataFrame, protocol: str, split: str) -> pd.DataFrame:
    """The rows of ``protocol`` / ``split`` of a split manifest, in a stable order."""
    known = sorted(table["protocol"].unique())
    if protocol not in known:
        raise ValueError(f"protocol {protocol!r} is not among the split protocols {known}")
    rows = table[(table["protocol"] == protocol) & (table["split"] == split)]
    return rows.reset_index(drop=True)


def split_task_options(
    task_options: Mapping[str, Any] | None, section: str = "finetune.task_options"
) -> tuple[Any, dict[str, Any]]:
    """``(TaskOptions, run settings)`` of one ``finetune.task_options.<task>`` mapping."""
    from robust_mmr_pipeline.tasks.config import TaskRunOptions
    from robust_mmr_pipeline.typed_config import parse

    return parse(TaskRunOptions, task_options, section).split()


def task_vocabulary(task: str, train_rows: pd.DataFrame, min_count: int = 1) -> list[str]:
    """Class names in index order, from TRAIN rows only (empty for retrieval)."""
    return task_spec(task).vocabulary(train_rows, min_count)


# --------------------------------------------------------------------------- fine-tuning


class _PrefixedLogger:
    """Forwards to ``inner`` with metric names prefixed by ``<task>/`` (one MLflow run, many
    tasks; ``@``, which MLflow refuses in names, spelled ``_at_``) and params under
    ``finetune.<task>.``."""

    def __init__(self, inner: Any, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.inner.log_params({f"finetune.{self.prefix}": dict(params)})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        renamed = {f"{self.prefix}/{k}".replace("@", "_at_"): v for k, v in metrics.items()}
        self.inner.log_metrics(renamed, step)

    def log_checkpoint(self, path: Path, step: int, final: bool) -> None:
        self.inner.log_checkpoint(path, step, final)


def _best_checkpoint(root: Path) -> Path:
    found = sorted(p for p in root.glob("step-*") if p.is_dir())
    if not found:
        raise RuntimeError(f"no best checkpoint was written under {root}")
    return found[-1]


def finetune_task(
    task: str,
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame,
    cache_dir: str,
    tokenizer: Any,
    backbone_checkpoint: str | None,
    model_config: Any,
    task_options: Mapping[str, Any],
    trainer: Mapping[str, Any],
    output_dir: str,
    log_to_mlflow: bool = True,
    log_prefix: str | None = None,
    linear_probe_epochs: int = 0,
    linear_probe_lr: float = 1e-3,
    wise_ft_alphas: tuple[float, ...] = (),
    on_eval: Callable[[int, Mapping[str, float]], None] | None = None,
) -> FinetuneSummary:
    """Fine-tune ``task`` on ``train_rows``, select the best step on ``val_rows``.

    ``linear_probe_epochs`` > 0 (LP-FT, vqa / classification): the new head is first fitted
    for that many epochs (AdamW at ``linear_probe_lr``) on the frozen backbone's features of the
    train rows
    (:mod:`robust_mmr_pipeline.tasks.probe`), and the probed model competes in model
    selection as step 0 before every layer is fine-tuned.

    ``wise_ft_alphas`` (a pre-trained backbone only): after training, the best checkpoint is
    interpolated back towards the model fine-tuning started from (WiSE-FT,
    :mod:`robust_mmr_pipeline.tasks.wise_ft`) at each alpha, and the interpolant with the best
    validation metric replaces it (the fine-tuned model, alpha 1, wins ties).

    ``on_eval(step, validation metrics)`` is called after every validation pass (e.g. Optuna's
    report / prune: an exception it raises stops the run).

    ``backbone_checkpoint``: a pre-training (or task) checkpoint whose backbone initialises the
    model; None builds the backbone from ``model_config`` with random weights (the
    no-pretraining baseline). ``task_options``: TaskOptions fields plus ``head_hidden_dim``,
    ``head_dropout``, ``answer_min_count``, ``retrieval_k``, ``eval_batch_size``. ``trainer``:
    TrainerConfig fields (``output_dir`` is set here). Unless the trainer resumes, a run in an
    ``output_dir`` holding an earlier run replaces it only once finished: it trains in
    ``<output_dir>/.next-run`` and is then published (see
    :func:`robust_mmr_pipeline.engine.start_run`), so an interrupted run loses nothing. The best
    checkpoint lands in ``<output_dir>/best/step-XXXXXXXX`` (one kept).
    """
    import torch

    from robust_mmr_pipeline.engine import (
        CompositeLogger,
        ImageCache,
        MemoryLogger,
        MLflowLogger,
        TrainerConfig,
        read_trainer_state,
        save_best,
        start_run,
        train,
    )
    from robust_mmr_pipeline.engine.checkpoint import BEST_DIRNAME, CHECKPOINTS_DIRNAME
    from robust_mmr_pipeline.launch import launched_process
    from robust_mmr_pipeline.recipes.evaluate import TaskEvaluator
    from robust_mmr_pipeline.tasks import TaskCollator, TaskModel, select_best
    from robust_mmr_pipeline.tasks.frozen_features import save_features

    spec = task_spec(task)
    if "split" in val_rows.columns and set(val_rows["split"].astype(str)) - {"val"}:
        raise ValueError("model selection reads validation rows only (val_rows hold other splits)")
    if train_rows.empty or val_rows.empty:
        raise ValueError(
            f"task {task!r}: {len(train_rows)} train and {len(val_rows)} val rows; both are needed"
        )
    options, extras = split_task_options(task_options, f"finetune.task_options.{task}")
    label_names = task_vocabulary(task, train_rows, int(extras["answer_min_count"]))
    config = TrainerConfig.from_dict({**dict(trainer), "output_dir": output_dir})
    # An earlier run's checkpoints and best/ stay untouched until this run has finished.
    target = start_run(
        output_dir,
        resume=config.resume,
        resume_from=config.resume_from,
        folders=(CHECKPOINTS_DIRNAME, BEST_DIRNAME),
    )
    config = dataclasses.replace(config, output_dir=str(target.write_dir))
    best_root = target.write_dir / BEST_DIRNAME
    torch.manual_seed(config.seed)
    build = {
        "label_names": label_names,
        "head_hidden_dim": extras["head_hidden_dim"],
        "head_dropout": float(extras["head_dropout"]),
        "options": options,
    }
    if backbone_checkpoint:
        model, saved_tokenizer = TaskModel.from_pretrained(backbone_checkpoint, task, **build)
        tokenizer = tokenizer if tokenizer is not None else saved_tokenizer
    else:
        model = TaskModel.from_scratch(model_config, task, **build)
    if tokenizer is None:
        raise ValueError("a tokenizer is needed (none given, none in the backbone checkpoint)")
    cache = ImageCache(cache_dir)
    dataset = spec.make_dataset(train_rows, cache, label_names)
    max_length = int(model.backbone.config.text.max_length)
    probe, frozen = None, None
    if linear_probe_epochs > 0 and model.head is not None:
        from robust_mmr_pipeline.tasks.frozen_features import feature_key
        from robust_mmr_pipeline.tasks.probe import fit_head_on_frozen_features, frozen_features

        # encoded once: the evaluation's frozen-backbone probe reads them (saved below)
        features = frozen_features(model.backbone, train_rows, cache, tokenizer, spec.text_column)
        key = feature_key(model.backbone, tokenizer, train_rows, cache,
                          text_column=spec.text_column, max_length=max_length)  # fmt: skip
        frozen = (features, key)
        probe = fit_head_on_frozen_features(
            model,
            train_rows,
            torch.tensor(dataset.labels),
            cache,
            tokenizer,
            text_column=spec.text_column,
            epochs=linear_probe_epochs,
            lr=linear_probe_lr,
            weight_decay=config.weight_decay,
            batch_size=config.batch_size,
            seed=config.seed,
            features=features,
        )
        config = dataclasses.replace(config, eval_at_start=True)
    wise_start = None
    if wise_ft_alphas and backbone_checkpoint:
        from robust_mmr_pipeline.tasks.wise_ft import snapshot

        wise_start = snapshot(model)  # the pre-trained backbone and its probed head
    evaluator = TaskEvaluator(
        task,
        "",
        cache,
        tokenizer,
        batch_size=int(extras["eval_batch_size"]),
        n_boot=0,
        retrieval_k=int(extras["retrieval_k"]),
        model=model,
    )
    metric = spec.selection_metric
    best = {"value": -math.inf, "step": -1}
    if (config.resume or config.resume_from) and best_root.exists():
        # a resumed run competes with the best checkpoint of the run it continues
        state = read_trainer_state(_best_checkpoint(best_root))
        best.update(value=float(state["val"][metric]), step=int(state["step"]))

    def eval_fn(net: Any, step: int, accelerator: Any) -> dict[str, float]:
        evaluator.model = net
        values, _items = evaluator.evaluate(val_rows, accelerator=accelerator)
        value = float(values[metric])
        if math.isfinite(value) and value > best["value"]:
            best.update(value=value, step=step)
            save_best(
                best_root, step, net, {"val": dict(values)}, tokenizer, accelerator.is_main_process
            )
        if on_eval is not None:
            on_eval(step, values)
        return {f"val/{k}": float(v) for k, v in values.items()}

    memory = MemoryLogger()
    mlflow_logger = (
        _PrefixedLogger(MLflowLogger(log_checkpoints="none"), log_prefix or task)
        if log_to_mlflow
        else None
    )
    loggers = CompositeLogger(memory, mlflow_logger)
    collate = TaskCollator(tokenizer, max_length, padding="longest")
    result = train(
        model, dataset, config, collate, tokenizer=tokenizer, logger=loggers, eval_fn=eval_fn
    )
    history = [dict(r) for r in result.eval_history]
    selection = select_best(history, f"val/{metric}")
    checkpoint = _best_checkpoint(best_root)
    if selection.step is None or int(selection.step) != int(best["step"]):
        raise RuntimeError(
            f"best validation step {selection.step} disagrees with the saved best {best['step']}"
        )
    val_metrics = {
        k.removeprefix("val/"): float(v) for k, v in selection.record.items() if k != "step"
    }
    wise = None
    if wise_start is not None:
        from robust_mmr_pipeline.engine.checkpoint import load_model_weights
        from robust_mmr_pipeline.tasks.wise_ft import choose_alpha

        def val_metrics_of(net: Any) -> dict[str, float]:
            evaluator.model = net
            return evaluator.evaluate(val_rows)[0]

        load_model_weights(model, checkpoint)  # the selected step, interpolated towards start
        choice = choose_alpha(model, wise_start, wise_ft_alphas, val_metrics_of, metric)
        wise = {"alpha": choice.alpha, "val": choice.curve()}
        logger.info("WiSE-FT, %s on validation by alpha: %s -> %g.", metric, wise["val"],
                    choice.alpha)  # fmt: skip
        chosen = choice.values[choice.alpha] if choice.alpha != 1.0 else None
        if chosen is not None:  # an interpolant beat the fine-tuned model on validation
            val_metrics = chosen
            save_best(
                best_root,
                int(selection.step),
                model,
                {"val": chosen, "wise_ft_alpha": choice.alpha},
                tokenizer,
                launched_process().is_main,
            )
    # after WiSE-FT, which rewrites the best checkpoint folder
    if frozen is not None and launched_process().is_main:
        save_features(checkpoint, *frozen)  # published with the checkpoint
    target.publish()
    checkpoint = target.final_path(checkpoint)
    return FinetuneSummary(
        task=task,
        checkpoint=str(checkpoint),
        best_step=int(selection.step),
        selection_metric=metric,
        val_metrics=val_metrics,
        history=history,
        num_classes=len(label_names),
        train_rows=len(train_rows),
        val_rows=len(val_rows),
        train_time_s=float(result.train_time_s),
        from_scratch=not backbone_checkpoint,
        linear_probe=dataclasses.asdict(probe) if probe is not None else None,
        wise_ft=wise,
    )


def backbone_config(checkpoint_dir: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The ModelConfig saved with a checkpoint (``model.json``), with ``overrides`` merged.

    ``model.json`` is read key by key (:func:`~robust_mmr_pipeline.engine.checkpoint.
    read_model_meta`): an unknown key is a CheckpointError naming the checkpoint file."""
    from robust_mmr_pipeline.engine import resolve_checkpoint
    from robust_mmr_pipeline.engine.checkpoint import read_model_meta
    from robust_mmr_pipeline.model import ModelConfig
    from robust_mmr_pipeline.typed_config import deep_merge

    config = read_model_meta(resolve_checkpoint(checkpoint_dir))["config"]
    if "backbone" in config and "task" in config:  # a TaskModel checkpoint
        config = config["backbone"]
    return ModelConfig.from_dict(deep_merge(dict(config), dict(overrides or {})))


def manifest_backbone_config(
    manifest: Mapping[str, Any], overrides: Mapping[str, Any] | None
) -> Any:
    """The architecture a backbone manifest describes, with ``overrides`` merged.

    A pre-training manifest points at its checkpoint (``checkpoint``); a from-scratch manifest
    (:func:`robust_mmr_pipeline.recipes.pretrain.scratch_manifest`) carries ``model_config``.
    """
    from robust_mmr_pipeline.model import ModelConfig
    from robust_mmr_pipeline.typed_config import deep_merge

    if manifest.get("checkpoint"):
        return backbone_config(manifest["checkpoint"], overrides)
    if "model_config" not in manifest:
        raise ValueError(
            "the backbone manifest has neither a checkpoint nor a model_config; pass the "
            "pretrain pipeline's pretrain_checkpoint.json"
        )
    return ModelConfig.from_dict(deep_merge(dict(manifest["model_config"]), dict(overrides or {})))


def _reported(name: str) -> bool:
    """Validation metrics worth a `dvc metrics show` column (no counts, no timings)."""
    return not (name == "n" or name.startswith("n_") or name.endswith(("_n", "seconds", "pairs")))


def finetune_all(
    tables: Mapping[str, pd.DataFrame],
    cache_dir: str,
    tokenizer: Any,
    backbone_manifest: Mapping[str, Any],
    params: Any,
    *,
    from_scratch: bool,
    output_dir: str,
    on_task_done: Any = None,
    log_prefix: str = "",
    pretrained_recipe: bool | None = None,
    budgets: list[float] | None = None,
    full_budget: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fine-tune every task of ``params.tasks`` (a :class:`FinetuneParams`) on
    ``params.protocol``'s train split at each of its label budgets, selecting on its val split.

    ``from_scratch``: random backbone weights of the manifest's architecture (the
    no-pretraining reference) instead of its checkpoint. ``pretrained_recipe`` (default: not
    ``from_scratch``): fine-tune with ``params.pretrained`` (its trainer overrides, LP-FT);
    False keeps ``params.trainer`` (the from-scratch recipe; on a pre-trained backbone that is
    plain fine-tuning). ``budgets``: the label budgets to run (default: each task's
    ``params.budgets_for``); ``full_budget`` False skips the full one. Checkpoints go to
    ``<output_dir>/<task>`` (full budget) and ``<output_dir>/budget_<p>pct/<task>``. Returns
    the manifest (per task: best checkpoint, step, validation history, the rows it saw; the
    full budget under ``tasks``, every budget under ``label_budgets``) and the flat validation
    metrics of the full budget for ``dvc metrics show``; ``on_task_done(task, summary)`` is
    called after each full-budget task (e.g. MLflow logging); ``log_prefix`` keeps a second
    run's MLflow params and curves apart (``<prefix>/<task>/...``).
    """
    from robust_mmr_pipeline.tasks.budgets import budget_label, budget_rows

    if not from_scratch and not backbone_manifest.get("checkpoint"):
        raise ValueError(
            "fine-tuning from pre-training, but the backbone manifest names no checkpoint "
            "(a no-pretraining manifest): set finetune.from_scratch: true or run pretrain first."
        )
    pretrained = (not from_scratch) if pretrained_recipe is None else pretrained_recipe
    backbone = None if from_scratch else backbone_manifest["checkpoint"]
    # A pre-trained backbone's token embeddings follow the ids of the tokenizer stored with its
    # checkpoint; given none, finetune_task takes that one (the catalog's may be newer).
    task_tokenizer = None if backbone else tokenizer
    model_config = manifest_backbone_config(backbone_manifest, params.model)
    manifest: dict[str, Any] = {
        "protocol": params.protocol,
        "from_scratch": from_scratch,
        "backbone_checkpoint": backbone,
        "preset": backbone_manifest.get("preset"),
        "text_kinds": list(params.text_kinds),
        "recipe": "pretrained" if pretrained else "scratch",
        "tasks": {},
        "label_budgets": {},
    }
    metrics: dict[str, Any] = {}
    for task in params.tasks:
        all_train = task_rows(tables[task], params.protocol, "train")
        val_rows = task_rows(tables[task], params.protocol, "val")
        fractions = params.budgets_for(task)
        if budgets is not None:
            fractions = [f for f in fractions if f in budgets or f >= 1.0]
        if not full_budget:
            fractions = [f for f in fractions if f < 1.0]
        for fraction in fractions:
            train_rows = budget_rows(all_train, fraction, params.budget_seed)
            label = budget_label(fraction)
            logger.info(
                "Fine-tuning %s (%s, %s recipe) at label budget %s: %d train / %d val rows.",
                task,
                "from scratch" if from_scratch else "from pre-training",
                "pre-trained" if pretrained else "from-scratch",
                label,
                len(train_rows),
                len(val_rows),
            )
            task_dir = (
                f"{output_dir}/{task}"
                if fraction >= 1.0
                else f"{output_dir}/budget_{100 * fraction:g}pct/{task}"
            )
            prefix = f"{log_prefix}/{task}" if log_prefix else task
            summary = finetune_task(
                task,
                train_rows,
                val_rows,
                cache_dir,
                task_tokenizer,
                backbone,
                model_config,
                params.task_options.get(task, {}),
                params.trainer_for(task, pretrained=pretrained, budget=fraction),
                task_dir,
                log_to_mlflow=params.log_to_mlflow,
                log_prefix=prefix if fraction >= 1.0 else f"{prefix}/budget_{100 * fraction:g}pct",
                linear_probe_epochs=params.pretrained.linear_probe_epochs if pretrained else 0,
                linear_probe_lr=params.pretrained.linear_probe_lr,
                wise_ft_alphas=tuple(params.pretrained.wise_ft_alphas) if pretrained else (),
            )
            entry = summary.as_dict()
            entry["retrieval_k"] = split_task_options(params.task_options.get(task))[1][
                "retrieval_k"
            ]
            entry["budget"] = fraction
            budget_entry = manifest["label_budgets"].setdefault(
                label, {"fraction": fraction, "tasks": {}}
            )
            budget_entry["tasks"][task] = entry
            if fraction < 1.0:
                continue
            manifest["tasks"][task] = entry
            metrics[task] = {
                "best_step": summary.best_step,
                **{f"val_{k}": v for k, v in summary.val_metrics.items() if _reported(k)},
            }
            if on_task_done is not None:
                on_task_done(task, summary)
    return manifest, metrics
