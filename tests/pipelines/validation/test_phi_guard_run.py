"""A real ``kedro run`` (ingestion, then validation) on a CSV source whose records hold
identifiers: the guard quarantines them before any table is written, so no identifier appears in
any file under the run's ``data/`` folder (tables, reports, findings) nor in its log, and the
stop message points to the per-source opt-out. The same run shows the other bad inputs of
issue 21 handled for real: a question of zero-width characters, a text with a bidirectional
override and a 1 x 1 image are bad records naming the CSV file; nothing else is lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from robust_mmr_pipeline.cli import TRACEBACK_ENV

IDENTIFIERS = ("JOHN SMITH", "Alan Turing", "A1234567", "1234567")
HEADER = ["id", "image", "text", "label", "split", "q", "a"]
ROWS = [
    ["n1", "img/n1.png", "Chest film, no effusion.", "normal", "train", "Any effusion?", "no"],
    ["n2", "img/n2.png", "Clear lungs.", "normal", "train", "Is the heart big?", "no"],
    ["n3", "img/n3.png", "Right lower lobe opacity.", "pneumonia", "train", "Opacity?", "yes"],
    ["n4", "img/n4.png", "Left basal consolidation.", "pneumonia", "test", "A mass?", "no"],
    # identifiers: an upper-case name with age and sex, a name without a title, a record number
    ["p1", "img/n1.png", "JOHN SMITH, 45M, chest pain.", "normal", "train", "Normal?", "yes"],
    ["p2", "img/n2.png", "Seen by Alan Turing in clinic.", "normal", "train", "Effusion?", "no"],
    ["p3", "img/n3.png", "Patchy opacity.", "pneumonia", "train", "Is #A1234567 a CT?", "yes"],
    # bad records of other kinds
    ["z1", "img/n4.png", "Small effusion.", "normal", "train", "\u200b", "yes."],
    ["b1", "img/n4.png", "Effusion \u202eon si ereht\u202c.", "normal", "train", "Fluid?", "no"],
    ["d1", "img/dot.png", "A dot.", "normal", "train", "Is there a dot?", "yes"],
]


def _dataset(root: Path) -> Path:
    for index, name in enumerate(("n1", "n2", "n3", "n4")):
        (root / "img").mkdir(parents=True, exist_ok=True)
        Image.new("L", (48, 40), 60 + 40 * index).save(root / "img" / f"{name}.png")
    Image.new("L", (1, 1), 90).save(root / "img" / "dot.png")
    frame = pd.DataFrame(ROWS, columns=HEADER)
    frame.to_csv(root / "pairs.csv", index=False, encoding="utf-8")
    return root


def _env(project: Path, data: Path) -> None:
    env = project / "conf" / "phirun"
    env.mkdir()
    (env / "parameters_ingestion.yml").write_text(
        "ingestion:\n"
        "  on_bad_record: drop\n"
        "  sources:\n"
        "    - kind: csv\n"
        "      name: clinic\n"
        f"      root: {data}\n"
        "      options: {id_column: id, label_column: label, split_column: split,\n"
        "                question_column: q, answer_column: a}\n",
        encoding="utf-8",
    )


def _kedro(project: Path, pipelines: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "COLUMNS": "200"}
    env.pop(TRACEBACK_ENV, None)
    kedro = str(Path(sys.executable).with_name("kedro"))
    return subprocess.run(
        [kedro, "run", "--env=phirun", f"--pipelines={pipelines}"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _texts_of(path: Path) -> str:
    """Every string a data file holds: its bytes as text, and for parquet its decoded values
    (compressed pages need not show a string byte for byte)."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".parquet":
        text += "\n" + pd.read_parquet(path).astype(str).to_csv()
    return text


@pytest.mark.slow
def test_identifiers_reach_no_file_and_no_log(kedro_project: Path, tmp_path: Path) -> None:
    project = kedro_project
    data = _dataset(tmp_path / "clinic_export")  # the input, outside the run's data/
    _env(project, data)

    ingested = _kedro(project, "ingestion")
    assert ingested.returncode == 0, ingested.stderr[-4000:]
    validated = _kedro(project, "validation")
    log = ingested.stdout + ingested.stderr + validated.stdout + validated.stderr
    assert validated.returncode == 1, log[-4000:]

    # nowhere: not in any file under data/, not in Kedro-Viz's event files, not in the log
    files = [p for p in (project / "data").rglob("*") if p.is_file()]
    files += [p for p in (project / ".viz").rglob("*") if p.is_file()]
    assert any(p.name == "pairs.parquet" for p in files)
    for identifier in IDENTIFIERS:
        assert identifier not in log, identifier
        holding = [str(p) for p in files if identifier in _texts_of(p)]
        assert not holding, (identifier, holding)

    # the flagged records are in no table; each is listed, masked, with what became of it
    primary = project / "data" / "03_primary"
    pairs = pd.read_parquet(primary / "pairs.parquet")
    vqa = pd.read_parquet(primary / "vqa.parquet")
    classification = pd.read_parquet(primary / "classification.parquet")
    for flagged in ("clinic:p1", "clinic:p2"):
        assert flagged not in set(pairs["pair_id"]) | set(classification["sample_id"])
    assert "clinic:p3" not in set(vqa["qid"]) and "clinic:p3:qa" not in set(pairs["pair_id"])
    assert {"clinic:n1", "clinic:n4", "clinic:p3"} <= set(pairs["pair_id"])  # nothing else lost
    phi = pd.read_csv(project / "data" / "08_reporting" / "phi_warnings.csv", dtype=str)
    assert list(phi.columns) == ["table", "source", "id", "column", "kind", "masked", "action"]
    assert set(phi["action"]) == {"quarantined"}
    found = set(zip(phi["id"], phi["kind"], strict=True))
    assert {
        ("clinic:p1", "patient_name"),
        ("clinic:p2", "doctor_name"),
        ("clinic:p3", "mrn"),
    } <= found
    assert "J*** S****, 4**" in set(phi["masked"])

    # the other bad inputs: bad records naming the CSV file and the record
    rejects = pd.read_parquet(primary / "rejects.parquet")
    records = [record.split(" ")[0] for record in rejects["record"]]
    files = dict(zip(records, rejects["file"], strict=True))
    # a record's own problem names the CSV; an unusable image names the image file
    assert files == {"z1": str(data / "pairs.csv"), "b1": str(data / "pairs.csv"),
                     "d1": str(data / "img" / "dot.png")}  # fmt: skip
    reasons = dict(zip(records, rejects["reason"], strict=True))
    assert set(reasons) == {"z1", "b1", "d1"}
    assert "column(s) ['q'] are empty" in reasons["z1"] and "U+200B" in reasons["z1"]
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in reasons["b1"]
    assert "image is too small: 1 x 1 pixels" in reasons["d1"]
    assert not pairs["text"].str.contains("\u200b|\u202e|\u202c").any()

    # the stop message and the report: per-source opt-out, recall and false-positive rate
    error = " ".join(log[log.index("Error: ") :].split())
    assert "DataValidationError" in error and "quarantined at ingestion" in error
    assert "validation.phi.allowed_sources: {<source>:" in error
    assert "move the check(s) ['phi']" not in error and "'phi'] from validation.fatal" not in error
    summary = json.loads((project / "data/08_reporting/validation_summary.json").read_text())
    # p1, p2: their pair and classification rows; p3: its VQA row and its QA statement
    assert summary["phi"]["quarantined_rows"] == 6
    guard = summary["phi"]["guard"]
    assert guard["recall"] >= 0.95 and guard["false_positive_rate"] <= 0.05
    report = (project / "data/08_reporting/validation_report.md").read_text()
    assert f"The guard's recall is {guard['recall']:.3f}" in report
    assert (
        "false-positive rate" in (project / "data/08_reporting/validation_report.html").read_text()
    )
