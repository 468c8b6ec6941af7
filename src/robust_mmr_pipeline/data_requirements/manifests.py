"""The check before a stage starts: the counts in the split manifests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from robust_mmr_pipeline.data_requirements.config import CROSS_DOMAIN_SKIP, TASK_TABLES
from robust_mmr_pipeline.data_requirements.protocols import protocol_fix
from robust_mmr_pipeline.data_requirements.shortfalls import Shortfall
from robust_mmr_pipeline.tasks.registry import TASK_SPECS


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
        protocol_fix(protocol, key.partition(".")[0]),
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
