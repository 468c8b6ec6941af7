"""Data requirements: the configured sources must give every stage of a run what it needs.

A stage that lacks its data fails late and far from the cause (a SLAKE run used to stop at
``fit_tokenizer`` blaming ``pretrain.protocol``, when the real cause was that no source gave
pairs). Two checks catch it early, each naming the stage, what is missing, the sources read and
the fix:

- :func:`static_shortfalls`, before any work when the run ingests: what each configured source
  gives is known from its reader's declaration (``yields(options)``,
  :func:`robust_mmr_pipeline.sources.registry.declared_yield`): its record tables, the text
  kinds of its pairs, whether it has images and, for most formats, its domain values. So a
  missing text kind, task table, held-out domain or protocol is reported before ingestion.
- :func:`manifest_shortfalls`, when a stage is about to start: the counts in the split
  manifests (train pairs of the requested kinds in the pre-training protocol; train / val rows
  per fine-tuning task; test rows and the cross-domain protocol for evaluation), which only the
  ingested tables tell (a CSV label column may be empty, a held-out organ may have no images).

Stage requirements:

========================  ============================================================
pretrain                  pairs of ``pretrain.text_kinds`` with images, in the train split
                          of ``pretrain.protocol`` (which must exist); the tokenizer fits
                          on the same texts
finetune task ``vqa``     VQA rows (train and val) in ``finetune.protocol``
finetune ``classif.``     classification rows (train and val)
finetune ``retrieval``    pairs of ``finetune.text_kinds`` (train and val)
evaluation                test rows of each task in ``evaluation.in_domain_protocol``; the
                          ``cross_domain_protocol`` (a held-out domain that exists)
as_released               ``domain_split.as_released: true``
========================  ============================================================

Nothing is skipped silently: a fine-tuning task or the cross-domain evaluation without its data
is skipped only when named in ``requirements.skip_when_missing`` (the skip is logged as a
warning); every other shortfall raises :class:`DataRequirementsError`. The hooks
(``hooks.DataRequirementsHooks``) run the checks and drop skipped tasks from the stage's
parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from robust_mmr_pipeline.tasks.registry import TASK_SPECS, TASKS
from robust_mmr_pipeline.typed_config import config

logger = logging.getLogger(__name__)

CROSS_DOMAIN_SKIP = "cross_domain"
# The namespace of the as_released fine-tuning + evaluation branch (pipelines/as_released).
AS_RELEASED_NAMESPACE = "as_released"
SKIPPABLE: tuple[str, ...] = (*TASKS, CROSS_DOMAIN_SKIP)
TASK_TABLES = {name: spec.table for name, spec in TASK_SPECS.items()}
# The stage-entry nodes checked against the manifests (by function name, so the namespaced
# copies of the as_released branch and the ablation are checked too).
STAGE_NODES: dict[str, str] = {
    "fit_tokenizer": "pretrain",
    "pretrain_model": "pretrain",
    "finetune_tasks": "finetune",
    "evaluate_models": "evaluation",
}


class DataRequirementsError(ValueError):
    """A stage of the run lacks the data it needs; the message names stage, data and fix."""


@config
class RequirementsParams:
    """``params:requirements``: how many rows a stage needs, and which stages may be skipped
    when their data is missing.

    ``skip_when_missing``: any of ``vqa``, ``classification``, ``retrieval`` (fine-tuning and
    evaluation of that task) and ``cross_domain`` (the cross-domain evaluation). Empty (the
    default): every shortfall stops the run before the stage starts.
    """

    skip_when_missing: list[str] = field(default_factory=list)
    # Rows a stage needs at least in each split it reads (pre-training pairs; train, val and
    # test rows per task): a val split of 2 questions selects a checkpoint by noise.
    min_rows: int = 1

    def __post_init__(self) -> None:
        if self.min_rows < 1:
            raise ValueError(f"requirements.min_rows must be >= 1, got {self.min_rows}.")
        unknown = sorted(set(self.skip_when_missing) - set(SKIPPABLE))
        if unknown:
            raise ValueError(
                f"requirements.skip_when_missing names {unknown}; the stages that can be skipped "
                f"are {list(SKIPPABLE)} (pre-training cannot: fine-tuning needs its backbone "
                "and tokenizer)."
            )


@dataclass(frozen=True)
class Shortfall:
    """One stage without its data: ``skip`` is the skip_when_missing key that may skip it."""

    stage: str
    missing: str
    fix: str
    skip: str | None = None

    def describe(self) -> str:
        return f"- {self.stage}: {self.missing}. Fix: {self.fix}"


# --------------------------------------------------------------------------------------------
# Configured sources
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfiguredSource:
    """An enabled entry of ``ingestion.sources`` with what its reader declares it gives."""

    name: str
    kind: str
    root: str
    tables: frozenset[str]
    text_kinds: frozenset[str]
    images: bool
    domains: tuple[str, ...] | None

    def label(self) -> str:
        gives = sorted(self.tables - {"pairs"}) + [f"{k} pairs" for k in sorted(self.text_kinds)]
        images = "" if self.images else ", no images"
        return f"{self.name} (kind {self.kind}, root {self.root}: {', '.join(gives)}{images})"


def configured_sources(ingestion: Mapping[str, Any] | None) -> list[ConfiguredSource]:
    """The enabled sources of ``params:ingestion`` and what each gives (declared, not read).

    Sources whose options do not parse are left out: ingestion reports those itself.
    """
    from robust_mmr_pipeline.params import parse
    from robust_mmr_pipeline.pipelines.ingestion.params import IngestionParams
    from robust_mmr_pipeline.sources.common.bad_records import IngestionError
    from robust_mmr_pipeline.sources.registry import declared_yield

    params = parse(IngestionParams, ingestion, "ingestion")
    found = []
    for spec in params.sources:
        if not spec.enabled:
            continue
        try:
            declared = declared_yield(spec.kind, spec.options, qa_statements=spec.qa_statements)
        except (IngestionError, ValueError) as exc:
            logger.debug("requirements: %s not declared (%s)", spec.source_name, exc)
            continue
        # a pre-training corpus feeds pre-training only, whatever its reader could give
        tables = declared.tables & {"pairs"} if spec.role == "corpus" else declared.tables
        found.append(
            ConfiguredSource(
                name=spec.source_name,
                kind=spec.kind,
                root=spec.root,
                tables=tables,
                text_kinds=declared.text_kinds,
                images=declared.images,
                domains=declared.domains,
            )
        )
    return found


def _sources_line(sources: Iterable[ConfiguredSource]) -> str:
    listed = [source.label() for source in sources]
    return "; ".join(listed) if listed else "none enabled"


# --------------------------------------------------------------------------------------------
# Protocols the domain split will emit
# --------------------------------------------------------------------------------------------


def _held_out(
    domain_split: Mapping[str, Any], sources: list[ConfiguredSource]
) -> tuple[bool | None, str]:
    """Whether the domain split holds a domain out (None: only the data tells), and why not."""
    held = domain_split.get("held_out_domains") or []
    if isinstance(held, Mapping):
        named = {name: list(values or []) for name, values in held.items()}
        present = {s.name: s for s in sources if named.get(s.name)}
        if not present:
            return False, (
                f"domain_split.held_out_domains names no configured source (it names "
                f"{sorted(k for k, v in named.items() if v) or 'nothing'}; the sources are "
                f"{[s.name for s in sources]})"
            )
        for name, source in present.items():
            if source.domains is None:
                return None, ""
            if set(named[name]) & set(source.domains):
                return True, ""
        listed = {name: named[name] for name in present}
        known = {name: list(present[name].domains or ()) for name in present}
        return False, (
            f"domain_split.held_out_domains {listed} names no domain those sources have "
            f"(their domains: {known})"
        )
    if not held:
        return False, "domain_split.held_out_domains is empty"
    if any(source.domains is None for source in sources):
        return None, ""
    every = sorted({d for source in sources for d in source.domains or ()})
    if set(held) & set(every):
        return True, ""
    return False, f"domain_split.held_out_domains {list(held)} names none of the domains {every}"


def protocol_problem(
    protocol: str, domain_split: Mapping[str, Any], sources: list[ConfiguredSource]
) -> str:
    """Why the domain split cannot emit ``protocol`` from these sources ("" if it can or
    only the data tells)."""
    if protocol in ("in_domain", "pretrain"):
        return ""
    if protocol == "as_released":
        return "" if domain_split.get("as_released") else "domain_split.as_released is false"
    if protocol.startswith("lodo:"):
        if not domain_split.get("leave_one_out_all"):
            return "domain_split.leave_one_out_all is false"
        domain = protocol.removeprefix("lodo:")
        if all(s.domains is not None for s in sources) and not any(
            domain in (s.domains or ()) for s in sources
        ):
            return f"no configured source has the domain {domain!r}"
        return ""
    if protocol == "cross_domain":
        holds, why = _held_out(domain_split, sources)
        return why if holds is False else ""
    return (
        f"{protocol!r} is not a protocol (pretrain, in_domain, cross_domain, lodo:<domain>, "
        "as_released)"
    )


def _protocol_fix(protocol: str, section: str) -> str:
    if protocol == "cross_domain":
        return (
            "hold out a domain of a configured source (domain_split.held_out_domains, e.g. "
            f"{{<source name>: [<domain>]}}) or set {section}.protocol to in_domain"
        )
    if protocol == "as_released":
        return "set domain_split.as_released: true"
    return f"set {section}.protocol to a protocol the domain split emits (in_domain)"


# --------------------------------------------------------------------------------------------
# Static check: configured sources
# --------------------------------------------------------------------------------------------


def _with(sources: list[ConfiguredSource], table: str, kinds: Iterable[str] = ()) -> list[str]:
    kinds = set(kinds)
    return [
        s.name
        for s in sources
        if s.images and table in s.tables and (table != "pairs" or s.text_kinds & kinds)
    ]


def _task_shortfall(
    task: str, stage: str, sources: list[ConfiguredSource], text_kinds: list[str]
) -> Shortfall | None:
    spec = TASK_SPECS[task]
    table = spec.table
    if _with(sources, table, text_kinds):
        return None
    if spec.ranks:
        offered = sorted({k for s in sources if s.images for k in s.text_kinds})
        missing = (
            f"no configured source gives image-text pairs of finetune.text_kinds {text_kinds} "
            f"with images (the sources give {offered or 'none'})"
        )
        fix = (
            f"set finetune.text_kinds to kinds the sources give ({offered}), add a source with "
            "such pairs, or drop retrieval from finetune.tasks"
        )
    else:
        missing = f"no configured source gives {table} rows with images"
        fix = f"drop {task} from finetune.tasks, or add {spec.source_hint}"
    fix += f" (or list {task} in requirements.skip_when_missing to skip it)"
    return Shortfall(stage, missing, fix, skip=task)


def static_shortfalls(parameters: Mapping[str, Any], sections: Iterable[str]) -> list[Shortfall]:
    """What the stages among ``sections`` (parameter sections the run reads: pretrain,
    finetune, evaluation, as_released) lack, from the configured sources' declarations."""
    sections = set(sections)
    sources = configured_sources(parameters.get("ingestion"))
    domain_split = parameters.get("domain_split") or {}
    found: list[Shortfall] = []
    if "pretrain" in sections:
        pretrain = parameters.get("pretrain") or {}
        kinds = list(pretrain.get("text_kinds") or [])
        stage = "pretrain (fit_tokenizer, pretrain_model)"
        if not _with(sources, "pairs", kinds):
            offered = sorted({k for s in sources if s.images for k in s.text_kinds})
            found.append(
                Shortfall(
                    stage,
                    f"no configured source gives image-text pairs of pretrain.text_kinds {kinds} "
                    f"with images (the sources give {offered or 'no pairs'})",
                    f"set pretrain.text_kinds to kinds the sources give ({offered}), e.g. "
                    "[qa_statement] for a VQA-only dataset, or add a source with such pairs",
                )
            )
        protocol = str(pretrain.get("protocol", "cross_domain"))
        problem = protocol_problem(protocol, domain_split, sources)
        if problem:
            found.append(
                Shortfall(
                    stage,
                    f"pretrain.protocol {protocol!r} will not exist: {problem}",
                    _protocol_fix(protocol, "pretrain"),
                )
            )
    finetune = parameters.get("finetune") or {}
    tasks = [t for t in finetune.get("tasks") or [] if t in TASKS]
    if "finetune" in sections or "as_released" in sections:
        kinds = list(finetune.get("text_kinds") or [])
        for task in tasks:
            shortfall = _task_shortfall(task, f"finetune task {task}", sources, kinds)
            if shortfall:
                found.append(shortfall)
    if "finetune" in sections:
        protocol = str(finetune.get("protocol", "in_domain"))
        problem = protocol_problem(protocol, domain_split, sources)
        if problem:
            found.append(
                Shortfall(
                    "finetune",
                    f"finetune.protocol {protocol!r} will not exist: {problem}",
                    _protocol_fix(protocol, "finetune"),
                )
            )
    if "evaluation" in sections:
        evaluation = parameters.get("evaluation") or {}
        protocol = str(evaluation.get("cross_domain_protocol", "cross_domain"))
        problem = protocol_problem(protocol, domain_split, sources) if protocol else ""
        if problem:
            found.append(
                Shortfall(
                    "evaluation (cross-domain test)",
                    f"evaluation.cross_domain_protocol {protocol!r} will not exist: {problem}",
                    "hold out a domain of a configured source (domain_split.held_out_domains) "
                    "or list cross_domain in requirements.skip_when_missing to evaluate "
                    "in-domain only",
                    skip=CROSS_DOMAIN_SKIP,
                )
            )
    if "as_released" in sections and not domain_split.get("as_released"):
        found.append(
            Shortfall(
                "as_released (fine-tuning and evaluation on the official split)",
                "domain_split.as_released is false, so the split manifests hold no "
                "as_released protocol",
                "set domain_split.as_released: true (conf/<env>/parameters_domain_split.yml)",
            )
        )
    return found


# --------------------------------------------------------------------------------------------
# Manifest check: counts after the domain split
# --------------------------------------------------------------------------------------------


def _protocols(*frames: pd.DataFrame | None) -> list[str]:
    found: set[str] = set()
    for frame in frames:
        if frame is not None and "protocol" in frame.columns:
            found |= set(frame["protocol"].astype(str))
    return sorted(found)


def _missing_protocol(protocol: str, known: list[str], key: str, section: str) -> Shortfall:
    return Shortfall(
        section,
        f"{key} {protocol!r} is not among the split protocols {known}",
        _protocol_fix(protocol, key.partition(".")[0]),
    )


def manifest_shortfalls(
    stage: str,
    params: Mapping[str, Any],
    *,
    split_pairs: pd.DataFrame | None = None,
    split_vqa: pd.DataFrame | None = None,
    split_classification: pd.DataFrame | None = None,
    finetuned_tasks: Iterable[str] | None = None,
    min_rows: int = 1,
) -> list[Shortfall]:
    """What ``stage`` (pretrain, finetune, evaluation) lacks in the split manifests, given its
    own parameter section ``params``: fewer than ``min_rows`` rows in a split it reads."""
    tables = {"vqa": split_vqa, "classification": split_classification, "retrieval": split_pairs}
    known = _protocols(split_pairs, split_vqa, split_classification)
    found: list[Shortfall] = []
    if stage == "pretrain" and split_pairs is not None:
        protocol = str(params.get("protocol", "cross_domain"))
        kinds = list(params.get("text_kinds") or [])
        name = "pretrain (fit_tokenizer, pretrain_model)"
        if protocol not in known:
            return [_missing_protocol(protocol, known, "pretrain.protocol", name)]
        train = split_pairs[
            (split_pairs["protocol"] == protocol) & (split_pairs["split"] == "train")
        ]
        if int(train["text_kind"].isin(kinds).sum()) < min_rows:
            offered = train["text_kind"].value_counts().to_dict()
            found.append(
                Shortfall(
                    name,
                    f"the train split of protocol {protocol!r} has fewer than {min_rows} pairs "
                    f"of pretrain.text_kinds {kinds} (it has {offered or 'no pairs at all'})",
                    f"set pretrain.text_kinds to kinds it has ({sorted(offered)}) or add a "
                    "source with such pairs",
                )
            )
    if stage == "finetune":
        protocol = str(params.get("protocol", "in_domain"))
        kinds = list(params.get("text_kinds") or [])
        for task in params.get("tasks") or []:
            frame = tables.get(task)
            if frame is None:
                continue
            # ranking tasks read the pairs table, of the configured text kinds only
            of_kinds = task in TASK_SPECS and TASK_SPECS[task].ranks
            if of_kinds:
                frame = frame[frame["text_kind"].isin(kinds)]
            rows = frame[frame["protocol"] == protocol]
            counts = rows["split"].value_counts()
            lacking = [s for s in ("train", "val") if int(counts.get(s, 0)) < min_rows]
            if lacking:
                what = "pairs of finetune.text_kinds " + str(kinds) if of_kinds else ""
                found.append(
                    Shortfall(
                        f"finetune task {task}",
                        f"protocol {protocol!r} has fewer than {min_rows} {' / '.join(lacking)} "
                        f"rows of "
                        f"{TASK_TABLES[task]}{' (' + what + ')' if what else ''} "
                        f"(train {int(counts.get('train', 0))}, val {int(counts.get('val', 0))})",
                        "add data for it, check the domain split (a val split needs "
                        "domain_split.fractions.val > 0 or carve_val_from_train), drop it from "
                        f"finetune.tasks, or list {task} in requirements.skip_when_missing",
                        skip=task,
                    )
                )
    if stage == "evaluation":
        tasks = list(finetuned_tasks or [])
        wanted = params.get("tasks")
        if wanted is not None:
            tasks = [t for t in tasks if t in wanted]
        in_domain = str(params.get("in_domain_protocol", "in_domain"))
        cross = str(params.get("cross_domain_protocol", "cross_domain"))
        for task in tasks:
            frame = tables.get(task)
            if frame is None:
                continue
            test = frame[(frame["protocol"] == in_domain) & (frame["split"] == "test")]
            if len(test) < min_rows:
                found.append(
                    Shortfall(
                        f"evaluation of {task}",
                        f"protocol {in_domain!r} has fewer than {min_rows} test rows of "
                        f"{TASK_TABLES[task]} ({len(test)})",
                        "check the domain split and evaluation.in_domain_protocol, or list "
                        f"{task} in requirements.skip_when_missing",
                        skip=task,
                    )
                )
        if cross and (
            cross not in known
            or all(
                tables[t] is None
                or tables[t][
                    (tables[t]["protocol"] == cross) & (tables[t]["split"] == "test")
                ].empty
                for t in tasks
                if t in tables
            )
        ):
            found.append(
                Shortfall(
                    "evaluation (cross-domain test)",
                    f"evaluation.cross_domain_protocol {cross!r} has no test rows (split "
                    f"protocols: {known})",
                    "hold out a domain that has data (domain_split.held_out_domains) or list "
                    "cross_domain in requirements.skip_when_missing",
                    skip=CROSS_DOMAIN_SKIP,
                )
            )
    return found


# --------------------------------------------------------------------------------------------
# Verdict
# --------------------------------------------------------------------------------------------


def enforce(
    shortfalls: list[Shortfall],
    skip_when_missing: Iterable[str],
    sources: list[ConfiguredSource],
    when: str,
) -> set[str]:
    """Raise DataRequirementsError for every shortfall the user did not allow to skip; log
    and return the skipped keys (tasks, ``cross_domain``)."""
    allowed = set(skip_when_missing)
    skipped = {s.skip for s in shortfalls if s.skip and s.skip in allowed}
    fatal = [s for s in shortfalls if not (s.skip and s.skip in allowed)]
    if fatal:
        raise DataRequirementsError(
            f"The configured data cannot feed this run ({when}):\n"
            + "\n".join(s.describe() for s in fatal)
            + f"\nSources read (ingestion.sources): {_sources_line(sources)}."
        )
    for shortfall in shortfalls:
        if shortfall.skip in skipped:
            logger.warning(
                "Skipping %s (requirements.skip_when_missing lists %r): %s.",
                shortfall.stage,
                shortfall.skip,
                shortfall.missing,
            )
    return {s for s in skipped if s is not None}


def without_skipped(stage: str, params: Mapping[str, Any], skipped: set[str]) -> dict[str, Any]:
    """``params`` of ``stage`` with the skipped tasks removed (raising when none is left)."""
    tasks = params.get("tasks")
    if not skipped or tasks is None or not set(tasks) & skipped:
        return dict(params)
    kept = [task for task in tasks if task not in skipped]
    if not kept and stage == "finetune":
        raise DataRequirementsError(
            f"finetune: every task of finetune.tasks {list(tasks)} lacks its data and is listed "
            "in requirements.skip_when_missing; nothing is left to fine-tune. Add data for one "
            "of them."
        )
    return {**params, "tasks": kept}
