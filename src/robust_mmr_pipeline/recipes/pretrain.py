"""Pre-training recipe: tokenizer, image cache and the MMR / MPMA / Robust-MMR training run."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainSummary:
    """What a pre-training run leaves behind (JSON-safe through ``as_dict``)."""

    checkpoint: str
    preset: str
    step: int
    samples_per_s: float
    flops_per_s: float | None
    peak_memory_mb: float
    train_time_s: float
    final_losses: dict[str, float]
    first_losses: dict[str, float]
    last_checkpoint: str = ""
    watch: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def select_training_pairs(
    split_pairs: pd.DataFrame, protocol: str, text_kinds: list[str]
) -> pd.DataFrame:
    """The train-split pairs of ``protocol`` whose text kind is used for pre-training.

    Pre-training reads only train images of the protocol, so the held-out domain and every
    test image stay unseen (honest cross-domain numbers).
    """
    known = sorted(split_pairs["protocol"].unique())
    if protocol not in known:
        raise ValueError(
            f"pretrain.protocol {protocol!r} is not among the split protocols {known}; "
            "set pretrain.protocol in conf/base/parameters_pretrain.yml."
        )
    rows = split_pairs[
        (split_pairs["protocol"] == protocol)
        & (split_pairs["split"] == "train")
        & (split_pairs["text_kind"].isin(text_kinds))
    ]
    if rows.empty:
        raise ValueError(
            f"no train pairs of kinds {text_kinds} in protocol {protocol!r}; check "
            "pretrain.text_kinds and the domain split."
        )
    return rows.sort_values("pair_id").reset_index(drop=True)


def continued_checkpoint(
    output_dir: str, trainer: Mapping[str, Any], init_checkpoint: str | None = None
) -> Path | None:
    """The checkpoint a pre-training run with these settings continues from, or None.

    Resuming (``trainer.resume`` with a checkpoint under ``<output_dir>/checkpoints``, or
    ``trainer.resume_from``) continues that checkpoint; ``init_checkpoint`` initialises the
    weights from its checkpoint. Either way the token embeddings are indexed by the ids of the
    tokenizer stored with it.
    """
    from robust_mmr_pipeline.engine import (
        TrainerConfig,
        latest_checkpoint,
        resolve_checkpoint,
        start_run,
    )

    config = TrainerConfig.from_dict({**dict(trainer), "output_dir": output_dir})
    if config.resume_from:
        return resolve_checkpoint(config.resume_from)
    if config.resume:
        # an unfinished replacement run (in <output_dir>/.next-run) or the run itself
        target = start_run(output_dir, resume=True, prepare=False)
        found = latest_checkpoint(target.write_dir / "checkpoints")
        if found is not None:
            return found
    return resolve_checkpoint(init_checkpoint) if init_checkpoint else None


def fit_tokenizer(
    texts: list[str],
    vocab_size: int,
    min_frequency: int,
    max_length: int,
    checkpoint: str | Path | None = None,
) -> Any:
    """The WordPiece tokenizer of a pre-training run: the one stored with ``checkpoint`` (the
    run continues it) when there is one, else trained on the pre-training texts (never on test
    text; the same texts and settings give the same tokenizer in every process)."""
    from robust_mmr_pipeline.engine.checkpoint import load_tokenizer
    from robust_mmr_pipeline.model.tokenizer import train_tokenizer

    if checkpoint is not None:
        stored = load_tokenizer(checkpoint)
        if stored is not None:
            logger.info("Using the tokenizer stored with %s (the run continues it).", checkpoint)
            return stored
        logger.warning(
            "%s stores no tokenizer: training one on the pre-training texts.", checkpoint
        )
    return train_tokenizer(
        texts, vocab_size=vocab_size, min_frequency=min_frequency, max_length=max_length
    )


def build_image_cache(
    images: pd.DataFrame,
    image_roots: Mapping[str, str],
    cache_dir: str,
    image_size: int,
    channels: int,
    resize_mode: str,
    workers: int,
) -> dict[str, Any]:
    """Decode every ingested image once into the uint8 memory-mapped cache; return its manifest.

    In a multi-process launch process 0 builds it; the others then find it up to date."""
    from robust_mmr_pipeline.engine import ImageCache
    from robust_mmr_pipeline.launch import main_process_first

    with main_process_first():
        cache = ImageCache.build(
            images,
            cache_dir,
            root=dict(image_roots),
            image_size=image_size,
            channels=channels,
            resize_mode=resize_mode,  # type: ignore[arg-type]
            workers=workers,
        )
    return {
        "cache_dir": str(Path(cache_dir)),
        "num_images": len(cache),
        "image_size": image_size,
        "channels": channels,
        "resize_mode": resize_mode,
    }


def build_model_config(
    preset: str, size: str, overrides: Mapping[str, Any], tokenizer: Any | None
) -> Any:
    """Preset -> size -> user overrides, with the text vocabulary taken from the tokenizer."""
    from robust_mmr_pipeline.model import apply_preset
    from robust_mmr_pipeline.model.tokenizer import special_token_ids
    from robust_mmr_pipeline.typed_config import deep_merge

    merged = dict(overrides)
    if tokenizer is not None:
        text = {"vocab_size": len(tokenizer), **special_token_ids(tokenizer)}
        merged = deep_merge(merged, {"text": text})
    return apply_preset(preset, merged, size=size)


def scratch_manifest(model_config: Any) -> dict[str, Any]:
    """A backbone manifest without weights: the no-pretraining baseline's architecture."""
    return {"checkpoint": None, "preset": None, "step": 0, "model_config": model_config.to_dict()}


def _first_last(losses: list[dict[str, float]], window: int = 10) -> tuple[dict, dict]:
    if not losses:
        return {}, {}
    frame = pd.DataFrame(losses).drop(columns=["step", "lr"], errors="ignore")
    head = frame.head(window).mean(numeric_only=True).to_dict()
    tail = frame.tail(window).mean(numeric_only=True).to_dict()
    return head, tail


def run_pretraining(
    train_pairs: pd.DataFrame,
    cache_dir: str,
    tokenizer: Any,
    model_config: Any,
    trainer: Mapping[str, Any],
    output_dir: str,
    init_checkpoint: str | None = None,
    log_to_mlflow: bool = True,
    register_as: str | None = None,
    watch: Any = None,
    watch_every: int = 0,
    select_best: bool = True,
) -> tuple[PretrainSummary, list[dict[str, float]]]:
    """Train an MMRModel on ``train_pairs``; checkpoints go to ``<output_dir>/checkpoints``.

    ``init_checkpoint``: a local checkpoint (ours, or one written elsewhere) whose weights
    initialise the model before training; ``tokenizer`` must be the one stored with it, if any
    (and with the resumed checkpoint when the trainer resumes). Unless the trainer config
    asks to resume, a run in an ``output_dir`` holding an earlier run's checkpoints replaces
    them: it trains beside them (``<output_dir>/.next-run``) and is published once its final
    checkpoint is written, so a run that fails or is killed before leaves them, and the
    manifests pointing at them, intact. The earlier run's folders left after publishing are
    deleted by :func:`robust_mmr_pipeline.engine.retire_replaced` once the manifest naming the
    new checkpoint is saved (the pipeline's hook does it).

    ``watch`` (a :class:`~robust_mmr_pipeline.recipes.pretrain_watch.PretrainWatch`) scores
    held-out losses and a frozen-feature probe every ``watch_every`` steps and at the end; with
    ``select_best`` the step with the best probe accuracy is kept under ``<output_dir>/best``
    (published with the run) and is the summary's ``checkpoint`` (``last_checkpoint`` is the
    end of the run).
    """
    import torch

    from robust_mmr_pipeline.engine import (
        CompositeLogger,
        ImageCache,
        MemoryLogger,
        MLflowLogger,
        PairCollator,
        PairDataset,
        TrainerConfig,
        domain_vocabulary,
        load_model_weights,
        save_best,
        start_run,
        train,
    )
    from robust_mmr_pipeline.engine.checkpoint import (
        BEST_DIRNAME,
        CHECKPOINTS_DIRNAME,
        check_tokenizer_matches,
    )
    from robust_mmr_pipeline.model import MMRModel
    from robust_mmr_pipeline.model.views import TextDegrader

    settings = dict(trainer)
    if watch is not None:
        settings["eval_every"] = watch_every
    config = TrainerConfig.from_dict({**settings, "output_dir": output_dir})
    config.validate()
    target = start_run(
        output_dir,
        resume=config.resume,
        resume_from=config.resume_from,
        folders=(CHECKPOINTS_DIRNAME, BEST_DIRNAME),
    )
    if target.staged:
        logger.info(
            "Pre-training replaces the run in %s: it trains in %s and takes its place once "
            "its final checkpoint is written.",
            output_dir,
            target.write_dir,
        )
    config = dataclasses.replace(config, output_dir=str(target.write_dir))
    best_root = target.write_dir / BEST_DIRNAME

    torch.manual_seed(config.seed)  # the initial weights depend on the seed, like the data order
    model = MMRModel(model_config)
    if init_checkpoint:
        check_tokenizer_matches(tokenizer, init_checkpoint)
        load_model_weights(model, init_checkpoint, strict=False)
    cache = ImageCache(cache_dir)
    dataset = PairDataset(
        train_pairs, cache, domains=domain_vocabulary(train_pairs["domain"].tolist())
    )
    # pad to the longest text of each batch: short captions cost no 48-token padding
    collate = PairCollator(
        tokenizer,
        max_length=model_config.text.max_length,
        padding="longest",
        text_degrader=TextDegrader.for_model(model_config),
    )
    memory = MemoryLogger()
    loggers = CompositeLogger(memory, MLflowLogger() if log_to_mlflow else None)
    loggers.log_params({"model": model_config.to_dict(), "trainer": dict(trainer)})
    eval_fn = None
    if watch is not None:

        def eval_fn(net: Any, step: int, accelerator: Any) -> dict[str, float]:
            before = watch.best["value"]
            metrics = watch(net, step, accelerator)
            if select_best and watch.best["value"] > before:
                save_best(
                    best_root, step, net, {"watch": dict(metrics)}, tokenizer,
                    accelerator.is_main_process,
                )  # fmt: skip
            return metrics

    result = train(
        model, dataset, config, collate, tokenizer=tokenizer, logger=loggers, eval_fn=eval_fn
    )
    best_found = sorted(best_root.glob("step-*")) if watch is not None and select_best else []
    target.publish()
    first, last = _first_last(result.losses)
    chosen = str(result.checkpoint_dir)
    watched = None
    if watch is not None:
        from robust_mmr_pipeline.recipes.pretrain_watch import watch_summary

        watched = {"history": result.eval_history, **watch_summary(result.eval_history)}
        if best_found:
            chosen = str(best_found[-1])
            logger.info(
                "Pre-training watch: the probe is best at step %s (%.3f); fine-tuning starts "
                "from %s.",
                watched.get("best_step"),
                watched.get("best_probe_accuracy", float("nan")),
                target.final_path(chosen),
            )
    summary = PretrainSummary(
        checkpoint=str(target.final_path(chosen)),
        preset=model_config.preset,
        step=result.step,
        samples_per_s=result.samples_per_s,
        flops_per_s=result.flops_per_s,
        peak_memory_mb=result.peak_memory_mb,
        train_time_s=result.train_time_s,
        final_losses=last,
        first_losses=first,
        last_checkpoint=str(target.final_path(result.checkpoint_dir)),
        watch=watched,
    )
    if log_to_mlflow and register_as:
        register_checkpoint(register_as)
    return summary, result.losses


def build_watch(
    params: Any,
    split_pairs: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    cache_dir: str,
    tokenizer: Any,
    model_config: Any,
) -> Any:
    """The :class:`~robust_mmr_pipeline.recipes.pretrain_watch.PretrainWatch` of
    ``params.watch`` (None when ``every`` is 0): the pre-training protocol's val pairs and the
    probe task's labeled train subset / val rows."""
    if params.watch.every <= 0:
        return None
    from robust_mmr_pipeline.engine import ImageCache, PairCollator
    from robust_mmr_pipeline.recipes.pretrain_watch import PretrainWatch, ProbeRows

    watch = params.watch
    val_pairs = split_pairs[
        (split_pairs["protocol"] == params.protocol)
        & (split_pairs["split"] == "val")
        & (split_pairs["text_kind"].isin(params.text_kinds))
    ]
    probe = None
    if watch.probe_task is not None:
        probe = ProbeRows.for_task(
            watch.probe_task,
            tables[watch.probe_task],
            watch.probe_protocol,
            watch.probe_train_fraction,
            seed=0,
        )
    from robust_mmr_pipeline.model.views import TextDegrader

    collate = PairCollator(
        tokenizer,
        max_length=model_config.text.max_length,
        padding="longest",
        text_degrader=TextDegrader.for_model(model_config),
    )
    return PretrainWatch(
        val_pairs,
        probe,
        ImageCache(cache_dir),
        tokenizer,
        collate,
        max_pairs=watch.max_val_pairs,
        seed=0,
    )


def register_checkpoint(name: str) -> None:
    """Register the last checkpoint artifact of the active MLflow run as a model version.

    The checkpoint is a folder of safetensors + JSON, not an MLflow flavour, so the version is
    created from its artifact URI (MLflow 3's ``register_model`` wants a logged model).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    run = mlflow.active_run()
    if run is None:
        return
    client = mlflow.MlflowClient()
    artifacts = client.list_artifacts(run.info.run_id, "checkpoints")
    if not artifacts:
        return
    latest = sorted(a.path for a in artifacts)[-1]
    try:
        if not client.search_registered_models(f"name='{name}'"):
            client.create_registered_model(name, description="robust-mmr-pipeline checkpoint")
        client.create_model_version(
            name, source=mlflow.get_artifact_uri(latest), run_id=run.info.run_id
        )
    except MlflowException as exc:
        logger.warning("Could not register the checkpoint as MLflow model %r: %s", name, exc)


def loss_figure(
    losses: list[dict[str, float]],
    title: str,
    watch: list[dict[str, float]] | None = None,
) -> Any:
    """Per-objective loss curves (one panel each) as a matplotlib Figure; with ``watch`` (the
    validation history of :mod:`~robust_mmr_pipeline.recipes.pretrain_watch`) the held-out
    value of each term on the same panel and the probe accuracy on a panel of its own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(losses)
    held = pd.DataFrame(watch or [])
    terms = [c for c in frame.columns if c not in ("step", "lr")]
    probes = [c for c in held.columns if c.startswith("probe/")]
    panels = terms + probes
    cols = min(3, max(1, len(panels)))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, term in zip(axes.flat, panels, strict=False):
        if term in probes:
            ax.plot(held["step"], held[term], marker="o", lw=2, color="tab:green")
            ax.set_title(f"{term} (val)")
        else:
            ax.plot(frame["step"], frame[term], lw=1, label="train")
            smooth = frame[term].rolling(10, min_periods=1).mean()
            ax.plot(frame["step"], smooth, lw=2, label="train, smoothed")
            if f"val/{term}" in held.columns:
                ax.plot(held["step"], held[f"val/{term}"], marker="o", lw=2, label="val")
                ax.legend(fontsize=7)
            ax.set_title(term)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
