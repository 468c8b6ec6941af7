"""Project CLI: ``kedro run`` (and ``python -m robust_mmr_pipeline``) with clean error messages.

Kedro's own ``run`` command, with every option unchanged, wrapped so that the project's own
errors (a bad parameter, a bad record, a fatal data check, an unusable checkpoint, a project
busy with another run, ...) and YAML syntax errors in conf/ (file, 1-based line and column)
print as their message (what is wrong, where, the fix) with exit status 1 instead of a
traceback of several hundred lines. Any other exception keeps its traceback; so does every
error when ``ROBUST_MMR_TRACEBACK=1`` is set. Kedro loads this module as the project's
``cli.py`` (commands here override Kedro's built-in ones).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

# The project's error types whose messages are written for the user, by module. Looked up in
# sys.modules when an error arrives, so this CLI imports none of them (nor torch) at start-up:
# an error of a module never imported cannot have been raised.
USER_ERRORS: dict[str, tuple[str, ...]] = {
    "robust_mmr_pipeline.hooks": ("ProjectBusyError", "TrackingConfigError"),
    "robust_mmr_pipeline.params": ("ParameterError",),
    "robust_mmr_pipeline.sources.common.bad_records": ("IngestionError",),
    "robust_mmr_pipeline.validation.report": ("DataValidationError",),
    "robust_mmr_pipeline.schema": ("SchemaError",),
    "robust_mmr_pipeline.engine.checkpoint": ("CheckpointError",),
    "robust_mmr_pipeline.engine.registry": ("ModelClassNotAllowedError",),
    "robust_mmr_pipeline.engine.config": ("TrainerConfigError",),
    "robust_mmr_pipeline.engine.run_result": ("NonFiniteLossError",),
    "robust_mmr_pipeline.model.config_sections": ("ConfigError",),
    "robust_mmr_pipeline.model.weights": ("WeightFileError",),
    "robust_mmr_pipeline.tasks.config": ("TaskConfigError",),
    "robust_mmr_pipeline.splits.manifests": ("ManifestError",),
    "robust_mmr_pipeline.splits.perturbation_sets": ("UnknownPerturbationError",),
    "robust_mmr_pipeline.splits.inputs": ("SplitError",),
}
TRACEBACK_ENV = "ROBUST_MMR_TRACEBACK"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes / contexts, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def user_error(exc: BaseException) -> BaseException | None:
    """The project error in ``exc`` or in its chain of causes (None if there is none)."""
    types: list[type] = []
    for module_name, names in USER_ERRORS.items():
        module = sys.modules.get(module_name)
        if module is not None:
            types += [getattr(module, name) for name in names if hasattr(module, name)]
    return next((e for e in _chain(exc) if isinstance(e, tuple(types))), None)


_KEDRO_YAML_FILE = re.compile(r"Invalid YAML or JSON file (.+?), unable to read line")


def _broken_yaml(conf: Path) -> tuple[Path, Any] | None:
    """The first file under ``conf`` that does not parse, with its YAML error."""
    import yaml

    for path in sorted([*conf.rglob("*.yml"), *conf.rglob("*.yaml")]):
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.MarkedYAMLError as exc:
            return path, exc
        except (OSError, yaml.YAMLError):
            continue
    return None


def yaml_error_text(exc: BaseException) -> str | None:
    """One paragraph for a YAML syntax error in a conf file: the file, the 1-based line and
    column, what the parser expected, the line itself and the fix (None: no YAML error)."""
    yaml = sys.modules.get("yaml")
    if yaml is None:
        return None
    chain = _chain(exc)
    marked = next(
        (e for e in chain if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark), None
    )
    if marked is None:
        return None
    named = next((m for e in chain if (m := _KEDRO_YAML_FILE.search(str(e)))), None)
    path = Path(named.group(1)) if named else None
    if path is None:  # an error Kedro did not wrap: find the file by parsing conf/ again
        found = _broken_yaml(Path.cwd() / "conf")
        if found is None:
            return None
        path, marked = found
    mark = marked.problem_mark
    try:
        shown = path.read_text(encoding="utf-8").splitlines()[mark.line]
    except (OSError, IndexError):
        shown = ""
    context = ""
    if marked.context:
        where = f" at line {marked.context_mark.line + 1}" if marked.context_mark else ""
        context = f" ({marked.context}{where})"
    return (
        f"The configuration file {path} is not valid YAML: line {mark.line + 1}, column "
        f"{mark.column + 1}: {marked.problem}{context}.\n"
        f"  {mark.line + 1} | {shown}\n"
        "Fix: correct the YAML at that line (a key and its value as `key: value`, lists as "
        "`[a, b]` or one `- item` per line, quotes around text holding ': ' or ' #'), then "
        "run again."
    )


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
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        found = user_error(exc)
        if found is not None:
            raise click.ClickException(error_text(found)) from exc
        syntax = yaml_error_text(exc)
        if syntax is not None:
            raise click.ClickException(syntax) from exc
        raise


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
