"""Human-readable validation report (Markdown and HTML) and the stop on fatal failures.

:func:`write_report` writes ``validation_report.md``, ``validation_report.html`` and
``validation_summary.json`` atomically; :func:`raise_if_fatal` then stops the run with a
:class:`DataValidationError` naming each failing fatal check's table, expectation, failing
count and a few example records, so the report is on disk when the run stops.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robust_mmr_pipeline.io_utils import atomic_write_text

REPORT_FILES: dict[str, str] = {
    "markdown": "validation_report.md",
    "html": "validation_report.html",
    "summary": "validation_summary.json",
}
TABLE_ORDER: tuple[str, ...] = (
    "images",
    "pairs",
    "vqa",
    "classification",
    "rejects",
    "image_files",
    "phi_warnings",
    "phi_opted_out",
    "split_overlap",
    "class_counts",
)


class DataValidationError(RuntimeError):
    """A fatal validation check failed; the message names table, expectation, count, examples."""


def _tables(summary: Mapping[str, Any]) -> list[str]:
    seen = [c["table"] for c in summary["checks"]]
    ordered = [t for t in TABLE_ORDER if t in seen]
    return ordered + sorted(set(seen) - set(ordered))


def _failures(summary: Mapping[str, Any], status: str) -> list[dict[str, Any]]:
    return [c for c in summary["checks"] if c["status"] == status]


def _count_text(check: Mapping[str, Any]) -> str:
    if check.get("error"):
        return "error"
    if check["unexpected_count"] is None:
        observed = check.get("observed_value")
        if observed is None or (check["success"] and isinstance(observed, list)):
            return ""
        return f"observed {_short(observed, 60)}"
    if check["unexpected_count"] and check["evaluated_count"]:
        return f"{check['unexpected_count']} of {check['evaluated_count']}"
    return str(check["unexpected_count"])


def _result_rows(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-table result rows: consecutive passing expectations of one check and expectation
    type (column_types over every column, ...) share a row; each failure has its own."""
    rows: list[dict[str, Any]] = []
    for check in checks:
        last = rows[-1] if rows else None
        if (
            last is not None
            and check["success"]
            and last["success"]
            and (last["check"], last["expectation"]) == (check["check"], check["expectation"])
        ):
            last["columns"].append(check["column"] or "")
            continue
        rows.append({**check, "columns": [check["column"] or ""]})
    for row in rows:
        row["column"] = ", ".join(c for c in row["columns"] if c)
        if len(row["columns"]) > 1:
            row["count_text"] = "" if row["unexpected_count"] is None else "0"
        else:
            row["count_text"] = _count_text(row)
    return rows


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _headline(summary: Mapping[str, Any]) -> str:
    status = "PASSED" if summary["success"] else "FAILED"
    return (
        f"{status}: {summary['fatal_failures']} fatal failure(s), {summary['warnings']} "
        f"warning(s) over {summary['expectations']} expectations "
        f"(Great Expectations {summary['great_expectations']}, {summary['seconds']} s)."
    )


def _phi_headline(phi: Mapping[str, Any]) -> str:
    """The PHI section's first sentences: findings, quarantined records, the guard's quality."""
    text = (
        f"{phi['count']} possible identifier(s) in the texts (masked below, never shown); "
        f"{phi.get('quarantined_rows', 0)} table row(s) quarantined at ingestion (in no table)."
    )
    guard = phi.get("guard")
    if guard:
        text += (
            f" The guard's recall is {guard['recall']:.3f} and its false-positive rate "
            f"{guard['false_positive_rate']:.3f} on {guard['positives']} labelled report "
            f"sentences with identifiers and {guard['negatives']} without ({guard['fixture']})."
        )
    return text


def failure_message(summary: Mapping[str, Any], report_paths: Mapping[str, Path]) -> str:
    """The text of the DataValidationError: every fatal failure with a few example records."""
    lines = [
        f"Data validation failed: {summary['fatal_failures']} fatal expectation(s) failed. "
        f"Report: {report_paths.get('markdown')} (and .html, validation_summary.json)."
    ]
    for check in _failures(summary, "fatal"):
        column = f" on column '{check['column']}'" if check["column"] else ""
        if check.get("error"):
            what = f"could not be evaluated: {check['error']}"
        elif check["unexpected_count"] is not None:
            what = f"{check['unexpected_count']} of {check['evaluated_count']} row(s) fail"
        else:
            what = f"observed {_short(check['observed_value'], 120)}"
        lines.append(
            f"- table '{check['table']}', check '{check['check']}' "
            f"({check['expectation']}{column}): {what}; {check['description']}."
        )
        lines += [f"    e.g. {_short(example, 240)}" for example in check["examples"][:3]]
    fatal = {c["check"] for c in _failures(summary, "fatal")}
    if "phi" in fatal:
        opted_out = set(summary["phi"].get("opted_out_sources", {}))
        sources = sorted(set(summary["phi"].get("by_source", {})) - opted_out)
        lines.append(
            f"PHI: {summary['phi'].get('quarantined_rows', 0)} table row(s) of source(s) "
            f"{sources} hold identifiers. They were quarantined at ingestion: they are in no "
            "table, and phi_warnings.csv lists each by id, kind and masked span (never the "
            "identifier). Fix: de-identify those records in the source and run again; or, if a "
            "source is published or consented, opt that source out with "
            "validation.phi.allowed_sources: {<source>: <why its texts may carry identifiers>} "
            "in conf/<env>/parameters_validation.yml (its records are then kept and reported "
            "as the phi_opted_out warning)."
        )
    others = sorted(fatal - {"phi"})
    if others:
        lines.append(
            f"Fix the data (or the ingestion options), or, to accept it, move the check(s) "
            f"{others} from validation.fatal to validation.warn in "
            "conf/<env>/parameters_validation.yml."
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- Markdown


def _md_text(value: Any) -> str:
    return "" if value is None else (value if isinstance(value, str) else _short(value, 200))


def _md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    from robust_mmr_pipeline.reporting.markdown import markdown_table

    table = markdown_table(headers, [[_md_text(v) for v in row] for row in rows], empty=None)
    return [table.removesuffix("\n"), ""]


def _md_records(records: list[Mapping[str, Any]]) -> list[str]:
    if not records:
        return []
    headers = list(dict.fromkeys(k for r in records for k in r))
    return _md_table(headers, [[r.get(h) for h in headers] for r in records])


def _md_counts(title: str, nested: Mapping[str, Mapping[str, Any]]) -> list[str]:
    if not nested:
        return []
    inner = sorted({k for v in nested.values() for k in v})
    rows = [[outer, *(values.get(k, 0) for k in inner)] for outer, values in nested.items()]
    return [f"### {title}", "", *_md_table(["", *inner], rows)]


def render_markdown(summary: Mapping[str, Any]) -> str:
    """The report as Markdown."""
    rows = summary["rows"]
    lines = [
        "# Data validation report",
        "",
        f"**{_headline(summary)}**",
        "",
        "Rows: " + ", ".join(f"{name} {n}" for name, n in rows.items()) + ".",
        "",
        "## Results per table",
        "",
    ]
    for table in _tables(summary):
        checks = [c for c in summary["checks"] if c["table"] == table]
        lines += [f"### {table}", ""]
        lines += _md_table(
            ["check", "severity", "expectation", "column", "result", "unexpected"],
            [
                [
                    r["check"],
                    r["severity"],
                    r["expectation"],
                    r["column"],
                    "pass" if r["success"] else f"**{r['status'].upper()}**",
                    r["count_text"],
                ]
                for r in _result_rows(checks)
            ],
        )
    problems = _failures(summary, "fatal") + _failures(summary, "warn")
    if problems:
        lines += ["## Failures and warnings", ""]
        for c in problems:
            column = f" on `{c['column']}`" if c["column"] else ""
            lines += [
                f"### {c['status'].upper()}: {c['table']} · {c['check']} ({_count_text(c)})",
                "",
                f"`{c['expectation']}`{column}: {c['description']}.",
                "",
            ]
            if c.get("error"):
                lines += [f"Error: {c['error']}", ""]
            lines += _md_records(c["examples"])
    phi = summary["phi"]
    lines += ["## PHI findings", "", _phi_headline(phi)]
    if phi["count"]:
        lines += [
            "By kind: " + ", ".join(f"{k} {v}" for k, v in phi["by_kind"].items()) + "; by "
            "table: " + ", ".join(f"{k} {v}" for k, v in phi["by_table"].items()) + "; by "
            "source: " + ", ".join(f"{k} {v}" for k, v in phi.get("by_source", {}).items()) + ".",
            "",
            *_md_records(phi["examples"]),
        ]
    for source, why in phi.get("opted_out_sources", {}).items():
        lines.append(
            f"Opted out of the phi check (validation.phi.allowed_sources): {source}: {why}"
        )
    lines += ["", "## Summaries", ""]
    s = summary["summaries"]
    lines += _md_counts("Images per source and domain", s["images_per_source_domain"])
    lines += _md_counts("Images per source and modality", s["images_per_source_modality"])
    lines += _md_counts("VQA rows per source and split", s["rows_per_source_split"]["vqa"])
    lines += _md_counts(
        "Classification rows per source and split", s["rows_per_source_split"]["classification"]
    )
    for source, balance in s["class_balance"].items():
        lines += _md_counts(
            f"Class balance: {source} (labels x split; max/min trainable ratio "
            f"{balance['imbalance_ratio']})",
            balance["labels"],
        )
    lines += _md_counts("VQA answer types per source", s["answer_types"])
    lines += _md_counts(
        f"Answer vocabulary (scope: {s['answer_vocab_scope']})", s["answer_vocabulary"]
    )
    lines += _md_counts("Train/test image overlap per source", s["split_overlap"])
    lines += _md_counts("Pairs per text kind and style", s["pairs_per_kind"])
    lines += _md_counts("Rejected records per source and reason", s["rejects_per_reason"])
    files = s["image_files"]
    lines += [
        "### Image files",
        "",
        *_md_table(["measure", "value"], [[k, v] for k, v in files.items()]),
    ]
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- HTML


def _cell(value: Any) -> str:
    return "" if value is None else (value if isinstance(value, str) else _short(value, 200))


def _records_rows(records: list[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    headers = list(dict.fromkeys(k for r in records for k in r))
    return headers, [[_cell(r.get(h)) for h in headers] for r in records]


def _counts_section(title: str, nested: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not nested:
        return []
    inner = sorted({k for v in nested.values() for k in v})
    rows = [[_cell(o), *(_cell(v.get(k, 0)) for k in inner)] for o, v in nested.items()]
    return [{"title": title, "note": "", "header": ["", *inner], "rows": rows, "open": False}]


def _headline_card(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The verdicts first: pass / fail, every fatal failure and warning, the PHI finding; then
    the rows and failing checks per table."""
    problems = _failures(summary, "fatal") + _failures(summary, "warn")
    verdicts = [{"kind": "pass" if summary["success"] else "fail", "text": _headline(summary)}]
    verdicts += [
        {
            "kind": "fail" if c["status"] == "fatal" else "warn",
            "text": f"{c['status'].upper()}: {c['table']} · {c['check']} ({_count_text(c)})",
        }
        for c in problems
    ]
    fatal_phi = any(c["check"] == "phi" for c in _failures(summary, "fatal"))
    verdicts.append(
        {"kind": "fail" if fatal_phi else "info", "text": _phi_headline(summary["phi"])}
    )
    rows = []
    for table in _tables(summary):
        checks = [c for c in summary["checks"] if c["table"] == table]
        failed = [c for c in checks if not c["success"]]
        rows.append(
            {
                "cells": [table, _cell(summary["rows"].get(table, "")), str(len(checks)),
                          str(len(failed))],
                "highlight": False,
            }
        )  # fmt: skip
    return {
        "key": "validation",
        "title": "Data validation",
        "subtitle": "Great Expectations suites over the unified tables; fatal checks stop the run",
        "header": ["table", "rows", "expectations", "failed"],
        "rows": rows,
        "verdicts": verdicts,
    }


def _html_sections(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    sections: list[dict[str, Any]] = []
    for index, table in enumerate(_tables(summary)):
        results = _result_rows([c for c in summary["checks"] if c["table"] == table])
        sections.append(
            {
                "heading": "Results per table" if index == 0 else "",
                "title": table,
                "note": "",
                "header": ["check", "severity", "expectation", "column", "result", "unexpected"],
                "rows": [
                    [r["check"], r["severity"], r["expectation"], r["column"],
                     "PASS" if r["success"] else r["status"].upper(), r["count_text"]]
                    for r in results
                ],
                "open": not all(r["success"] for r in results),
            }
        )  # fmt: skip
    problems = _failures(summary, "fatal") + _failures(summary, "warn")
    for index, c in enumerate(problems):
        column = f" on {c['column']}" if c["column"] else ""
        note = f"{c['expectation']}{column}: {c['description']}."
        if c.get("error"):
            note += f" Error: {c['error']}"
        header, rows = _records_rows(c["examples"])
        sections.append(
            {
                "heading": "Failures and warnings" if index == 0 else "",
                "title": f"{c['status'].upper()}: {c['table']} · {c['check']} ({_count_text(c)})",
                "note": note,
                "header": header,
                "rows": rows,
                "open": True,
            }
        )
    phi = summary["phi"]
    note = _phi_headline(phi)
    if phi["count"]:
        note += (
            " By kind: " + ", ".join(f"{k} {v}" for k, v in phi["by_kind"].items())
            + "; by table: " + ", ".join(f"{k} {v}" for k, v in phi["by_table"].items())
            + "; by source: "
            + ", ".join(f"{k} {v}" for k, v in phi.get("by_source", {}).items()) + "."
        )  # fmt: skip
    note += "".join(
        f" Opted out of the phi check (validation.phi.allowed_sources): {source}: {why}."
        for source, why in phi.get("opted_out_sources", {}).items()
    )
    header, rows = _records_rows(phi["examples"])
    sections.append(
        {"title": "PHI findings", "note": note, "header": header, "rows": rows, "open": True}
    )
    s = summary["summaries"]
    summaries = [
        *_counts_section("Images per source and domain", s["images_per_source_domain"]),
        *_counts_section("Images per source and modality", s["images_per_source_modality"]),
        *_counts_section("VQA rows per source and split", s["rows_per_source_split"]["vqa"]),
        *_counts_section(
            "Classification rows per source and split", s["rows_per_source_split"]["classification"]
        ),
    ]
    for source, balance in s["class_balance"].items():
        summaries += _counts_section(
            f"Class balance: {source} (labels x split; max/min trainable ratio "
            f"{balance['imbalance_ratio']})",
            balance["labels"],
        )
    summaries += [
        *_counts_section("VQA answer types per source", s["answer_types"]),
        *_counts_section(
            f"Answer vocabulary (scope: {s['answer_vocab_scope']})", s["answer_vocabulary"]
        ),
        *_counts_section("Train/test image overlap per source", s["split_overlap"]),
        *_counts_section("Pairs per text kind and style", s["pairs_per_kind"]),
        *_counts_section("Rejected records per source and reason", s["rejects_per_reason"]),
        {
            "title": "Image files",
            "note": "",
            "header": ["measure", "value"],
            "rows": [[_cell(k), _cell(v)] for k, v in s["image_files"].items()],
            "open": False,
        },
    ]
    summaries[0] = {**summaries[0], "heading": "Summaries"}
    return sections + summaries


def render_html(summary: Mapping[str, Any]) -> str:
    """The report as a self-contained HTML page (the shared report template)."""
    from robust_mmr_pipeline.reporting.render import render

    return render(
        "report.html.j2",
        title="Data validation report",
        meta={"Rows": ", ".join(f"{name} {n}" for name, n in summary["rows"].items())},
        cards=[_headline_card(summary)],
        figures=[],
        sections=_html_sections(summary),
    )


# ----------------------------------------------------------------------------- files


def summary_json(summary: Mapping[str, Any]) -> str:
    """The summary as the JSON text written to validation_summary.json."""
    return json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_report(
    summary: Mapping[str, Any], markdown: str, html_text: str, report_dir: str | Path
) -> dict[str, Path]:
    """Write the Markdown, HTML and JSON summary into ``report_dir``; return their paths."""
    folder = Path(report_dir)
    paths = {kind: folder / name for kind, name in REPORT_FILES.items()}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths["markdown"], markdown)
    atomic_write_text(paths["html"], html_text)
    atomic_write_text(paths["summary"], summary_json(summary))
    return paths


def raise_if_fatal(summary: Mapping[str, Any], report_paths: Mapping[str, Path]) -> None:
    """Raise DataValidationError when a fatal check failed (after the report was written)."""
    if not summary["success"]:
        raise DataValidationError(failure_message(summary, report_paths))
