"""The tuning objective: short pre-training + VQA fine-tuning, scored on a VALIDATION domain.

Honest cross-domain validation: the protocol's (``in_domain``) TRAIN rows minus one training
domain pre-train and fine-tune the model; that domain's train + val rows are the validation
set. The held-out TEST domain (left out of ``in_domain`` by the domain split) and every test
split row are never read, so the tuned weights can be reported on the test domain once.
The tokenizer and the image cache come from the pretrain pipeline (the tokenizer is fitted on
the pre-training texts, which include the validation domain's train texts, never test text).

Fine-tuning and model selection are the fine-tuning pipeline's own
(:func:`robust_mmr_pipeline.recipes.finetune.finetune_task`, validation every ``eval_every``
steps); a trial scores the selected model. Every validation pass is reported to Optuna as it
happens (``finetune_task``'s ``on_eval``), so a pruned trial stops mid-fine-tuning.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from robust_mmr_pipeline.tuning.config import TuningParams
from robust_mmr_pipeline.tuning.space import model_overrides, sample
from robust_mmr_pipeline.tuning.study import trial_seed, worker_name

logger = logging.getLogger(__name__)

# Fine-tuning defaults of a trial (under tuning.finetune_trainer overrides).
FINETUNE_DEFAULTS: dict[str, Any] = {
    "max_steps": 100,
    "batch_size": 32,
    "lr": 1.0e-3,
    "weight_decay": 0.01,
    "warmup_fraction": 0.1,
    "schedule": "cosine",
    "log_every": 10,
}
# Hardware settings of pretrain.trainer that the short runs inherit.
INHERITED = ("mixed_precision", "cpu", "num_workers", "compile", "compile_backend")


@dataclass(frozen=True)
class ValidationSplit:
    """Rows of one tuning split: pre-training pairs, fine-tuning and validation VQA rows."""

    validation_domain: str
    pretrain_pairs: pd.DataFrame
    train_vqa: pd.DataFrame
    val_vqa: pd.DataFrame

    def describe(self) -> dict[str, Any]:
        return {
            "validation_domain": self.validation_domain,
            "pretrain_pairs": len(self.pretrain_pairs),
            "train_vqa": len(self.train_vqa),
            "val_vqa": len(self.val_vqa),
            "train_domains": sorted(self.train_vqa["domain"].unique().tolist()),
        }


def validation_split(
    split_pairs: pd.DataFrame,
    split_vqa: pd.DataFrame,
    protocol: str,
    validation_domain: str | None,
    text_kinds: list[str],
) -> ValidationSplit:
    """Hold one TRAINING domain of ``protocol`` out as the validation domain.

    ``validation_domain`` None picks the training domain with the most VQA rows (the largest,
    least noisy validation set). Raises ValueError naming the choices when impossible.
    """
    vqa = split_vqa[(split_vqa["protocol"] == protocol) & (split_vqa["split"] != "test")]
    pairs = split_pairs[
        (split_pairs["protocol"] == protocol)
        & (split_pairs["split"] == "train")
        & (split_pairs["text_kind"].isin(text_kinds))
    ]
    if vqa.empty:
        known = sorted(split_vqa["protocol"].unique())
        raise ValueError(
            f"tuning.protocol {protocol!r} has no VQA train/val rows (protocols: {known})"
        )
    counts = vqa["domain"].value_counts()
    domains = sorted(counts.index)
    if len(domains) < 2:
        raise ValueError(
            f"protocol {protocol!r} has one training domain {domains}: a validation domain "
            "needs at least two (add sources / sites)."
        )
    if validation_domain is None:
        validation_domain = str(sorted(domains, key=lambda d: (-counts[d], d))[0])
    elif validation_domain not in domains:
        raise ValueError(
            f"tuning.validation_domain {validation_domain!r} is not a training domain of "
            f"{protocol!r}; choose one of {domains}."
        )
    train_vqa = vqa[(vqa["split"] == "train") & (vqa["domain"] != validation_domain)]
    val_vqa = vqa[vqa["domain"] == validation_domain]
    train_pairs = pairs[pairs["domain"] != validation_domain]
    if train_vqa.empty or train_pairs.empty:
        raise ValueError(
            f"holding out {validation_domain!r} leaves no training rows in {protocol!r}"
        )
    sort = ["qid"] if "qid" in vqa.columns else ["image_id", "question"]
    return ValidationSplit(
        validation_domain=validation_domain,
        pretrain_pairs=train_pairs.sort_values("pair_id").reset_index(drop=True),
        train_vqa=train_vqa.sort_values(sort).reset_index(drop=True),
        val_vqa=val_vqa.sort_values(sort).reset_index(drop=True),
    )


@dataclass
class ObjectiveInputs:
    """Everything a trial needs besides the sampled values."""

    split: ValidationSplit
    cache_dir: str
    tokenizer: Any
    preset: str
    size: str
    base_model: Mapping[str, Any]
    base_trainer: Mapping[str, Any]


def _mlflow_run(enabled: bool, name: str) -> Any:
    if not enabled:
        return None
    import mlflow

    return mlflow.start_run(run_name=name, nested=mlflow.active_run() is not None)


def _end_mlflow(run: Any, status: str, values: Mapping[str, float]) -> None:
    if run is None:
        return
    import mlflow

    finite = {k: v for k, v in values.items() if isinstance(v, float) and math.isfinite(v)}
    if finite:
        mlflow.log_metrics(finite)
    mlflow.set_tag("optuna.state", status)
    mlflow.end_run("FINISHED" if status in ("COMPLETE", "PRUNED") else "FAILED")


def report_history(
    trial: optuna.Trial,
    history: list[tuple[int, float]],
    prune: bool,
    run: Any,
    results: dict[str, float],
) -> None:
    """Report the validation values of a fine-tuning run (``(step, value)``, in step order) to
    Optuna and MLflow; with ``prune`` (single-objective studies), raise TrialPruned at the
    first step where the pruner says so (``results["val_accuracy"]`` then holds that step's
    value)."""
    for step, value in history:
        if run is not None:
            import mlflow

            mlflow.log_metric("val_accuracy", value, step=step)
        if prune:
            trial.report(value, step)
            if trial.should_prune():
                results["val_accuracy"] = value
                raise optuna.TrialPruned(f"pruned at fine-tuning step {step}")


def make_objective(
    inputs: ObjectiveInputs, params: TuningParams
) -> Callable[[optuna.Trial], float | list[float]]:
    """The Optuna objective of one study (see the module docstring)."""
    from robust_mmr_pipeline.recipes.evaluate import TaskEvaluator
    from robust_mmr_pipeline.recipes.finetune import finetune_task
    from robust_mmr_pipeline.recipes.pretrain import build_model_config, run_pretraining
    from robust_mmr_pipeline.tasks.registry import task_spec
    from robust_mmr_pipeline.typed_config import deep_merge

    split = inputs.split
    # the validation domain's train and val rows all validate the trial (none is trained on)
    val_rows = split.val_vqa.assign(split="val")
    metric = task_spec(params.task).selection_metric
    hardware = {k: inputs.base_trainer[k] for k in INHERITED if k in inputs.base_trainer}
    single = len(params.directions) == 1
    work_root = Path(params.work_dir) / params.study_name

    def objective(trial: optuna.Trial) -> float | list[float]:
        seed = trial_seed(params.seed, trial.number)
        trial.set_user_attr("worker", worker_name())
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("validation_domain", split.validation_domain)
        values = sample(trial, params.search_space)
        overrides = model_overrides(values)
        trial.set_user_attr("model_overrides", overrides)
        trial_dir = work_root / f"trial-{trial.number:05d}"
        run = _mlflow_run(params.log_to_mlflow, f"tuning-trial-{trial.number}")
        results: dict[str, float] = {}
        status = "FAIL"
        try:
            if run is not None:
                import mlflow

                mlflow.log_params({"trial_number": trial.number, "seed": seed, **values})
                mlflow.set_tag("optuna.study", params.study_name)
            config = build_model_config(
                inputs.preset,
                inputs.size,
                deep_merge(dict(inputs.base_model), overrides),
                inputs.tokenizer,
            )
            pretrain_trainer = {
                **dict(inputs.base_trainer),
                **params.pretrain_trainer,
                "seed": seed,
                "progress_bar": False,
                "resume": False,
                "resume_from": None,
                "checkpoint_every": 0,
                "keep_last": 1,
            }
            summary, _ = run_pretraining(
                split.pretrain_pairs,
                inputs.cache_dir,
                inputs.tokenizer,
                config,
                pretrain_trainer,
                str(trial_dir / "pretrain"),
                log_to_mlflow=False,
            )
            finetune_dir = trial_dir / "finetune"
            if finetune_dir.exists():
                shutil.rmtree(finetune_dir)
            finetune_trainer = {
                **FINETUNE_DEFAULTS,
                **hardware,
                **params.finetune_trainer,
                "seed": seed,
                "eval_every": params.eval_every,
                "checkpoint_every": 0,
                "keep_last": 1,
                "progress_bar": False,
            }
            finetuned = finetune_task(
                params.task,
                split.train_vqa,
                val_rows,
                inputs.cache_dir,
                inputs.tokenizer,
                summary.checkpoint,
                None,
                {"eval_batch_size": params.eval_batch_size},
                finetune_trainer,
                str(finetune_dir),
                log_to_mlflow=False,
                on_eval=lambda step, val: report_history(
                    trial, [(int(step), float(val[metric]))], single, run, results
                ),
            )
            # the selected (best-on-validation) model, as the fine-tuning pipeline keeps it
            results["val_accuracy"] = float(finetuned.val_metrics[metric])
            objectives = [results["val_accuracy"]]
            if params.perturbed.enabled:
                evaluator = TaskEvaluator(
                    params.task,
                    finetuned.checkpoint,
                    inputs.cache_dir,
                    inputs.tokenizer,
                    batch_size=params.eval_batch_size,
                    n_boot=0,
                )
                perturbation = {
                    "modality": "image",
                    "perturbation": params.perturbed.image,
                    "severity": params.perturbed.severity,
                    "seed": params.seed,
                }
                name = params.objective_names[1]
                results[name] = float(evaluator.evaluate(val_rows, perturbation)[0][metric])
                objectives.append(results[name])
            for key, value in results.items():
                trial.set_user_attr(key, value)
            status = "COMPLETE"
            return objectives[0] if single else objectives
        except optuna.TrialPruned:
            status = "PRUNED"
            raise
        except Exception as exc:
            trial.set_user_attr("failure", f"{type(exc).__name__}: {exc}"[:1000])
            logger.warning("Tuning trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            raise
        finally:
            _end_mlflow(run, status, results)
            if not params.keep_trial_checkpoints and trial_dir.exists():
                shutil.rmtree(trial_dir, ignore_errors=True)

    return objective
