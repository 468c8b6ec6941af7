"""Project CLI: ``kedro run`` (and ``python -m robust_mmr_pipeline``) with clean error messages.

Kedro's own ``run`` command, with every option unchanged, wrapped so that the project's own
errors (a bad parameter, a bad record, a fatal data check, an unusable checkpoint, ...) print
as their message (what is wrong, where, the fix) with exit status 1 instead of a traceback of
several hundred lines. Any other exception keeps its traceback; so does every error when
``ROBUST_MMR_TRACEBACK=1`` is set. Kedro loads this module as the project's ``cli.py``
(commands here override Kedro's built-in ones).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

# The project's error types whose messages are written for the user, by module. Looked up in
# sys.modules when an error arrives, so this CLI imports none of them (nor torch) at start-up:
# an error of a module never imported cannot have been raised.
USER_ERRORS: dict[str, tuple[str, ...]] = {
    "robust_mmr_pipeline.params": ("ParameterError",),
    "robust_mmr_pipeline.sources._common": ("IngestionError",),
    "robust_mmr_pipeline.validation.report": ("DataValidationError",),
    "robust_mmr_pipeline.schema": ("SchemaError",),
    "robust_mmr_pipeline.engine.checkpoint": ("CheckpointError",),
    "robust_mmr_pipeline.engine.registry": ("ModelClassNotAllowedError",),
    "robust_mmr_pipeline.engine.config": ("TrainerConfigError",),
    "robust_mmr_pipeline.engine.trainer": ("NonFiniteLossError",),
    "robust_mmr_pipeline.model.config": ("ConfigError",),
    "robust_mmr_pipeline.tasks.config": ("TaskConfigError",),
    "robust_mmr_pipeline.splits.manifests": ("ManifestError",),
    "robust_mmr_pipeline.splits.perturbation_sets": ("UnknownPerturbationError",),
    "robust_mmr_pipeline.splits.protocols": ("SplitError",),
}
TRACEBACK_ENV = "ROBUST_MMR_TRACEBACK"


def user_error(exc: BaseException) -> BaseException | None:
    """The project error in ``exc`` or in its chain of causes (None if there is none)."""
    types: list[type] = []
    for module_name, names in USER_ERRORS.items():
        module = sys.modules.get(module_name)
        if module is not None:
            types += [getattr(module, name) for name in names if hasattr(module, name)]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, tuple(types)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def error_text(exc: BaseException) -> str:
    """The message printed for a project error: its type and its own message."""
    return (
        f"{type(exc).__name__}: {exc}\n"
        f"(The run stopped before finishing; set {TRACEBACK_ENV}=1 for the traceback.)"
    )


def _run(**kwargs: Any) -> Any:
    try:
        return kedro_run.callback(**kwargs)  # type: ignore[misc]
    except Exception as exc:
        found = user_error(exc)
        if found is None or os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        raise click.ClickException(error_text(found)) from exc


run = click.Command(
    name="run",
    callback=_run,
    params=list(kedro_run.params),
    help=kedro_run.help,
    short_help=kedro_run.short_help,
    context_settings=kedro_run.context_settings,
)


@click.group(name="robust-mmr-pipeline")
def cli() -> None:
    """Project-specific commands (they override Kedro's built-in ones of the same name)."""


cli.add_command(run)
