"""PHI guard: rule-based detection of identifiers left in the text columns of a source.

Kinds (HIPAA Safe Harbor identifiers a radiology text can carry, written for reports):

- ``patient_name``: a name after a title (``Mr.``, ``Mrs``, ``Ms.``, ``Miss``; upper-case titles
  need their dot, so ``MR angiography`` and ``MS plaques`` stay clean), after a ``Patient`` /
  ``Pt`` / ``Name`` cue (``Patient: JOHN SMITH``, ``Patient John Smith``, ``patient SMITH,
  JOHN``);
- ``doctor_name``: ``Dr. Chen``, ``DR. WILLIAMS``, ``Dr Jean-Luc Martin``, and signatures
  (``Sarah Thompson, MD``);
- ``date``: numeric dates with a valid day and month (``03/14/2012``, ``14.03.12``,
  ``2012-03-14``) and dates with a month name (``14-Mar-1962``, ``March 14, 2012``,
  ``14th of March, 2012``, ``12MAR2012``, ``March 2012``); a year alone is not PHI;
- ``age_over_89``: ``92-year-old``, ``95 yo`` (Safe Harbor allows ages up to 89);
- ``phone``: North-American numbers with any of ``()``, ``-``, ``.``, space as separators, and
  numbers after ``Phone`` / ``Tel`` / ``Fax`` / ``Pager``;
- ``ssn``: ``123-45-6789``, ``123 45 6789`` and numbers after ``SSN`` / ``social security``;
- ``mrn``: labelled record, accession and account numbers, or a bare run of 7+ digits;
- ``email``; ``address``: a street address (``42 Elm Street``) or a state and ZIP code.

Maintained detectors were checked first and none runs offline here with a useful recall:
presidio-analyzer's pattern recognizers (no names without a spaCy model; its e-mail recognizer
fetches the public-suffix list at run time), scrubadub (names need NLTK corpora downloaded at
run time), philter-ucsf (NLTK tagger data, pickled lists, last release 2020). Recall and
false-positive rate of these patterns are measured on a labelled set of report sentences
(``tests/validation/data/phi_sentences.tsv``).

Matching is two-stage: every pattern is valid both in Python's ``re`` and in RE2 (pandas'
pyarrow-backed strings use RE2: no look-arounds, no back-references, non-capturing groups
only), so ``str.contains`` picks the candidate rows vectorised; the few candidates are then
matched in Python, where name matches are dropped when a name word is a de-identification mask
(``XXXX``) or an ordinary report word (``Patient History``, ``Patient Positioning``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

# Letters of names (Latin-1 included: Müller, José). Literal ranges work in re and RE2.
_UP = "A-ZÀ-ÖØ-Þ"
_LOW = "a-zß-öø-ÿ"
_CAP_WORD = f"[{_UP}](?:'[{_UP}])?[{_LOW}]+(?:-[{_UP}][{_LOW}]+)?"  # Jones, O'Brien, Anne-Marie
_UPPER_WORD = f"[{_UP}](?:'[{_UP}])?[{_UP}]+(?:-[{_UP}]+)?"  # SMITH, O'BRIEN
_WORD = f"(?:{_CAP_WORD}|{_UPPER_WORD})"
_INITIAL = f"[{_UP}]\\."  # a middle initial needs its dot ("Robert L" is not one)
_NAME = f"{_WORD}(?: {_INITIAL})?(?: {_WORD})?"  # one or two words, optional middle initial
# two words in one case style: John Smith, JOHN SMITH, SMITH, JOHN (not "GE Healthcare")
_FULL_NAME = (
    f"(?:{_CAP_WORD}(?: {_INITIAL})? {_CAP_WORD}|{_UPPER_WORD}(?: {_INITIAL})? {_UPPER_WORD}"
    f"|{_UPPER_WORD}, {_UPPER_WORD})"
)
_TITLE = "(?:Dr\\.?|DR\\.|Doctor|Prof\\.?|Professor|Nurse(?: Practitioner)?)"
# the age and sex that follow a name in a header line: 45M, 62 F, 71 y/o M, 38yo
_AGE_SEX = "[0-9]{1,3} ?(?:[MF]|y/?o|yo)"
# cues after which a clinician's name follows without a title (seen by Alan Turing)
_CLINICIAN_CUE = (
    "(?:(?:seen|examined|evaluated|dictated|signed|reviewed|read|reported|interpreted|"
    "referred|performed|approved|verified|transcribed|treated|consulted|discussed|called|"
    "given|sent|faxed)(?: by| with| to)|(?:signed|attending|physician|radiologist|"
    "referring|requested by|cc)\\s?:)"
)

_MONTHS = (
    ("Jan", "uary"),
    ("Feb", "ruary"),
    ("Mar", "ch"),
    ("Apr", "il"),
    ("May", ""),
    ("Jun", "e"),
    ("Jul", "y"),
    ("Aug", "ust"),
    ("Sep", "tember"),
    ("Sept", ""),
    ("Oct", "ober"),
    ("Nov", "ember"),
    ("Dec", "ember"),
)
# Capitalised or upper case only: "may 10" in running text is a verb, "May 10" / "MAY 10" a date.
_MONTH = (
    "(?:"
    + "|".join(
        f"{short}(?:{rest})?|{short.upper()}(?:{rest.upper()})?"
        if rest
        else short + "|" + short.upper()
        for short, rest in _MONTHS
    )
    + ")"
)
_DAY = "(?:0?[1-9]|[12][0-9]|3[01])"
_MON = "(?:0?[1-9]|1[0-2])"
_YEAR = "(?:19|20)[0-9]{2}"
_ORDINAL = "(?:st|nd|rd|th)?"

_NUMERIC_DATES = "|".join(
    # one separator throughout, a valid day and month: ratios (16.2/24.7) and sizes do not match
    rf"(?:{_MON}{sep}{_DAY}|{_DAY}{sep}{_MON}){sep}(?:{_YEAR}|[0-9]{{2}})"
    rf"|{_YEAR}{sep}{_MON}{sep}{_DAY}"
    for sep in ("/", "-", r"\.")
)
_NAMED_DATES = (
    rf"{_MONTH}\.? {_DAY}{_ORDINAL},? {_YEAR}"  # March 14, 2012 / Mar 14 2012
    rf"|{_DAY}{_ORDINAL}(?: of)?[ /.-]?{_MONTH}\.?,?[ /.-]?(?:{_YEAR}|'?[0-9]{{2}})"  # 14-Mar-62
    rf"|{_MONTH},? {_YEAR}"  # March 2012 (month and year: a date element)
)

_PARTICLE = "(?:(?:van|von|der|den|de|la|le|du|di|da|del|dos|ten|ter|bin|al) ){0,2}"
_RELATIVE = (
    "(?:mother|father|wife|husband|son|daughter|brother|sister|spouse|partner|guardian|parent)"
)

PHI_PATTERNS: dict[str, str] = {
    "patient_name": (
        # Mr. Jones, Mrs Garcia, Ms. KIM, MR. SMITH (upper-case titles need the dot), Mrs. van Berg
        rf"\b(?:M(?:r|rs|s|x)\.?|Miss|M(?:R|RS|S)\.|MISS) {_PARTICLE}{_NAME}"
        # Patient: John Smith, PATIENT NAME: SMITH, JOHN; a bare "Name: Maria Gonzalez" only
        # where a line or field starts (not "Trade name: Omnipaque")
        rf"|(?:(?i:\b(?:patient(?:'s)?(?: name)?|pt\.?(?: name)?|name of (?:the )?patient))"
        rf"|(?:^|[\n\r;|]) *(?i:name))\.? ?[:#] *{_WORD}(?:,? {_NAME})?"
        # Patient John Smith, patient is Anna Kowalski, patient SMITH, JOHN, patient KOWALSKI
        # ANNA (two words in one case style), her mother, Linda Park
        rf"|(?i:\b(?:patient|pt\.?|{_RELATIVE})(?: is| was| named| called|,)?) {_FULL_NAME}"
        # a header line: JOHN SMITH, 45M / Anna Kowalski, 33F / DOE, JANE 54F
        rf"|\b{_FULL_NAME},? (?:age |aged )?{_AGE_SEX}\b"
    ),
    "doctor_name": (
        rf"\b(?:Dr\.? ?|DR\. ?|(?:Doctor|DOCTOR|Prof\.?|Professor|Nurse(?: Practitioner)?) )"
        rf"{_PARTICLE}{_NAME}"
        # seen by Alan Turing, discussed with GRACE HOPPER, Signed: Rosalind Franklin
        rf"|(?i:\b{_CLINICIAN_CUE}) ?(?:{_TITLE} )?{_FULL_NAME}"
        # Sarah Thompson, MD / Michael Brown, M.D. / J. Smith, MD / Laura Smith, DO
        rf"|(?:\b{_CAP_WORD}|\b{_INITIAL})(?: {_INITIAL})? {_CAP_WORD},? "
        r"(?:(?:MD|DO|MBBS|MBChB|FRCR|FRCPC|PhD|RN|NP|PA-C)\b|M\.D\.|D\.O\.)"
    ),
    "date": rf"\b(?:{_NUMERIC_DATES}|{_NAMED_DATES})\b",
    # 92-year-old, 95 yo, aged 97 (ages up to 89 are not identifying)
    "age_over_89": (
        r"\b(?:9[0-9]|1[01][0-9])(?:[- ]?(?:years?|yrs?)[- ]old\b|[- ]?(?:yo|y/o)\b|[- ]?y\.o\.)"
        r"|(?i:\baged?) (?:9[0-9]|1[01][0-9])\b"
    ),
    # (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567, +1 555 123 4567, Fax: 5551234
    "phone": (
        r"(?:\+?1[ .-]?)?(?:\([0-9]{3}\) ?|\b[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}\b"
        r"|(?i:\b(?:phone|tel|telephone|fax|pager|cell|mobile)\b\.?(?: no\.?| number)? ?[:#]?) ?"
        r"\+?[0-9][0-9 ().-]{5,}[0-9]"
    ),
    "ssn": (
        r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b|\b[0-9]{3} [0-9]{2} [0-9]{4}\b"
        r"|(?i:\b(?:ssn|ss#|social security(?: number| no\.?)?) ?[:#]?) ?"
        r"[0-9]{3}[ -]?[0-9]{2}[ -]?[0-9]{4}\b"
    ),
    # MRN: 1234567, MR# 2233445, accession #A12345, account number: 99887766, 7+ bare digits,
    # a number after "#" (#A1234567, #RX2233445; not "#2 lesion"), letters + 7 digits (A1234567)
    "mrn": (
        r"(?i:\b(?:mrn|mr#|medical record(?: number| no\.?)?|record number|accession"
        r"(?: number| no\.?)?|acc#|account(?: number| no\.?)?|acct\.?(?: no\.?)?|patient id|"
        r"hospital number|unit number)\s*[:#]?\s*[a-z]?[0-9]{4,})|\b[0-9]{7,}\b"
        r"|#\s?[A-Za-z]{0,3}-?[0-9]{5,}\b|\b[A-Z]{1,2}[0-9]{7,}\b"
    ),
    "email": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
    # 42 Elm Street, 1200 Washington Avenue, Boston, MA 02115
    "address": (
        rf"\b[0-9]{{1,5}} (?:{_CAP_WORD} ){{1,3}}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|"
        r"Lane|Ln|Drive|Court|Ct|Place|Pl|Terrace|Parkway|Pkwy|Highway|Hwy|Square)\b"
        rf"|\b{_CAP_WORD}, [A-Z]{{2}} [0-9]{{5}}(?:-[0-9]{{4}})?\b"
    ),
}

# A cheap regex every match of a kind contains: the kind's own pattern runs only on the rows
# that hold it (most texts have no run of digits, no "@", no title), which keeps the scan fast.
PREFILTERS: dict[str, str] = {
    # no \b here: a word boundary makes RE2 some 40 times slower on these alternations
    "patient_name": rf"(?i:mr|ms|mx|miss|patient|pt|name|{_RELATIVE})|[0-9] ?(?:[MF]|y/?o|yo)",
    "doctor_name": (
        r"(?i:dr|doctor|prof|nurse| by | with |to |signed|attending|physician|radiologist|"
        r"referring|cc)|MD|DO|MBBS|MBChB|FRCR|FRCPC|PhD|RN|NP|PA-C|M\.D\."
    ),
    "date": "[0-9]{2}|[0-9][/.-][0-9]",  # every form has a 2-digit year or d/m, d-m, d.m
    "age_over_89": "[0-9]{2}",
    "phone": "[0-9]{3}|(?i:phone|tel|fax|pager|cell|mobile)",
    "ssn": "[0-9]{3}",
    "mrn": "[0-9]{4}",  # also every "#" number and letters + digits form
    "email": "@",
    "address": "[0-9]",
}

# Kinds whose matches are names: the match is kept only if a name word survives the filter.
NAME_KINDS: frozenset[str] = frozenset({"patient_name", "doctor_name"})


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WEAK_CUES = _words(
    "patient pt mother father wife husband son daughter brother sister spouse partner guardian "
    "parent"
)
# Cue and title words of the name patterns (not names themselves).
_CUES = _WEAK_CUES | _words(
    "mr mrs ms mx miss dr doctor prof professor nurse practitioner patient's name is was named "
    "called of the md do mbbs mbchb frcr frcpc phd rn np pa-c m.d d.o age aged yo "
    "seen examined evaluated dictated signed reviewed read reported interpreted referred "
    "performed approved verified transcribed treated consulted discussed called given sent "
    "faxed by with to attending physician radiologist referring requested cc "
    "van von der den de la le du di da del dos ten ter bin al"
)
# Words that follow a cue in report text without being a name: section headers, report words,
# demographics. A name match holding one of them is dropped.
NON_NAME_WORDS = _words(
    """
    history information info care unit name names number id identification identifier
    demographics details data summary record records consent safety preparation prep position
    positioned positioning positions age sex gender male female man woman boy girl child infant
    adult patient patients status type group case cases series study studies report reports exam
    examination examinations scan scans image images imaging view views film films findings
    impression comparison technique indication indications clinical notes note comments comment
    protocol procedure procedures dose room ward department hospital clinic center centre
    services service referral referred request requested requesting physician radiologist
    angiography angiogram spectroscopy venography enterography cholangiography urography
    arthrography resonance tomography ultrasound sonography ct mri mr pet xr cr dr us left right
    bilateral anterior posterior lateral medial supine prone erect upright portable follow up
    chest abdomen pelvis head neck brain spine knee hip shoulder hand foot
    lung lungs lobe lobes liver kidney kidneys spleen pancreas heart cardiac aorta bowel colon
    bladder breast thyroid skull sinus sinuses orbit orbits lumbar thoracic cervical sacrum
    pleural pulmonary hepatic renal adrenal ovarian uterine prostate vertebral femoral tibial
    effusion effusions mass masses nodule nodules lesion lesions fracture fractures opacity
    consolidation edema pneumonia pneumothorax tumor tumour cyst cysts stone stones
    pain trauma fever cough fall injury headache dyspnea dyspnoea syncope seizure stroke
    sepsis swelling bleeding weakness
    upper lower middle acute chronic normal abnormal small large mild moderate severe stable
    new old prior contrast enhanced views portable exam
    radiology resident fellow team staff technologist consultant registrar surgeon surgery
    medicine nuclear emergency primary intensive oncology cardiology neurology pathology
    ordering on call
    was is are were has had with without and or of in on at for the a an no not none unknown
    after before during following showing shows showed demonstrating revealing undergoing who
    whose which that this these those from to by via
    """
)
_MASK = re.compile(r"^[Xx*#_-]+$")
_NAME_TOKEN = re.compile(r"[^\W\d_][\w'.-]*")
_LONG_WORD = re.compile(r"\b[^\W\d_]{4,}\b")
_EPONYM_NOUN = re.compile(
    r"(?:['’]s)?[ -](?:nodules?|signs?|disease|syndrome|tumou?rs?|fractures?|lesions?|nodes?|"
    r"cysts?|hernias?|malformations?|sarcomas?|lymphomas?|procedures?|classification|scores?|"
    r"criteria|lines?|fascia|angles?|operations?|shunts?|triad|phenomenon|reflex)\b",
    re.IGNORECASE,
)
_CHAIN_BEFORE = re.compile(r"[0-9][./-]")
_CHAIN_AFTER = re.compile(r"[./-][0-9]")
_NOT_YEARS = re.compile(r"\s*-?\s*(?:days?|weeks?|wks?|months?|mos?|%|percent)\b", re.IGNORECASE)

# A finding never holds the identifier itself: ``masked`` keeps the first character of each
# word or number and stars the rest ("J*** S****", "#A*******", "0*/1*/2***"), enough to find
# the spot in the record, not to read it. ``action`` (the guard's table) says what became of
# the record.
PHI_COLUMNS: tuple[str, ...] = ("table", "source", "id", "column", "kind", "masked")
GUARD_COLUMNS: tuple[str, ...] = (*PHI_COLUMNS, "action")
QUARANTINED = "quarantined"
KEPT_OPTED_OUT = "kept (source opted out)"
_MASKED_TOKEN = re.compile(r"[^\W_]+")


def mask(span: str) -> str:
    """``span`` with every character of each word or number but the first replaced by ``*``."""
    return _MASKED_TOKEN.sub(lambda m: m.group(0)[0] + "*" * (len(m.group(0)) - 1), span)


def empty_phi_table(columns: tuple[str, ...] = PHI_COLUMNS) -> pd.DataFrame:
    """An empty PHI findings table."""
    return pd.DataFrame({name: pd.Series([], dtype=object) for name in columns})


def title_case(text: str) -> bool:
    """Whether most longer words of ``text`` are capitalised (a heading or a Title Case caption,
    where capitalised words after "patient" are not names)."""
    words = _LONG_WORD.findall(text)
    return len(words) >= 3 and sum(w[0].isupper() for w in words) / len(words) >= 0.5


def is_name(match: str, text: str = "", end: int | None = None) -> bool:
    """Whether a name-kind match names someone.

    Some word besides the cue must remain, none a mask (``XXXX``) or an ordinary report word.
    After a weak cue (a bare "patient" or a relative, no colon) the text must also not be in
    Title Case, and the name must not be an eponym (``Sister Mary Joseph nodule``); a title
    (``Mr.``, ``Dr``) is a strong cue. ``end``: where the match ends in ``text``.
    """
    words = [w.rstrip(".,") for w in _NAME_TOKEN.findall(match)]
    names = [w for w in words if w.lower() not in _CUES and len(w) > 1]
    if not names or any(_MASK.match(w) or w.lower() in NON_NAME_WORDS for w in names):
        return False
    if words[0].lower() not in _WEAK_CUES or ":" in match or "#" in match:
        return True
    if end is not None and _EPONYM_NOUN.match(text, end):
        return False
    return not title_case(text.replace(match, " "))


def keeps(kind: str, found: re.Match[str], text: str) -> bool:
    """Whether a candidate match of ``kind`` in ``text`` is reported (names pass
    :func:`is_name`; "aged 95 days" is not an age in years)."""
    if kind in NAME_KINDS:
        return is_name(found.group(0), text, found.end())
    if kind == "age_over_89":
        return _NOT_YEARS.match(text, found.end()) is None
    if kind == "date":  # not a link of a longer chain of numbers (2.5-5-10 mg, 1.2/3/4/2012)
        before, after = text[max(0, found.start() - 2) : found.start()], text[found.end() :]
        return not (_CHAIN_BEFORE.fullmatch(before) or _CHAIN_AFTER.match(after))
    return True


def first_match(text: str, kind: str, pattern: re.Pattern[str]) -> str | None:
    """The first match of ``pattern`` in ``text`` that passes the kind's filter, or None."""
    for found in pattern.finditer(text):
        if keeps(kind, found, text):
            return found.group(0).strip()
    return None


def scan_text(values: pd.Series, ids: pd.Series, patterns: Mapping[str, str]) -> list[pd.DataFrame]:
    """Rows ``(id, kind, masked)`` for every value holding a kind (its first match per kind,
    masked: the identifier itself never leaves this function).

    ``str.contains`` picks the candidate rows first (vectorised, usually none; a kind's
    :data:`PREFILTERS` regex narrows the rows its pattern runs on); the candidates are then
    matched in Python, which also applies the name filter (:func:`is_name`).
    """
    frames = []
    text = values.dropna()
    if text.empty:
        return frames
    narrowed: dict[str, pd.Series] = {}
    for kind, pattern in patterns.items():
        prefilter = PREFILTERS.get(kind) if pattern == PHI_PATTERNS.get(kind) else None
        rows = text
        if prefilter is not None:
            if prefilter not in narrowed:
                keep = text.str.contains(prefilter, regex=True).fillna(False).astype(bool)
                narrowed[prefilter] = text[keep]
            rows = narrowed[prefilter]
        if rows.empty:
            continue
        hit = rows.str.contains(pattern, regex=True)
        if not hit.any():
            continue
        compiled = re.compile(pattern)
        candidates = rows[hit.fillna(False).astype(bool)]
        matched = pd.Series(
            [first_match(str(v), kind, compiled) for v in candidates],
            index=candidates.index,
            dtype=object,
        ).dropna()
        if matched.empty:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "id": ids.loc[matched.index].astype(str).to_numpy(),
                    "kind": kind,
                    "masked": [mask(str(span)) for span in matched],
                }
            )
        )
    return frames


def source_of(record_id: str) -> str:
    """The source of a record id (``<source name>:<local id>``, the convention of every
    adapter); ids without a prefix give ``<unknown>``."""
    source, sep, _ = record_id.partition(":")
    return source if sep and source else "<unknown>"


def scan_tables(
    tables: Mapping[str, pd.DataFrame],
    columns: Mapping[str, list[str]],
    id_columns: Mapping[str, str],
    patterns: Mapping[str, str],
) -> pd.DataFrame:
    """The PHI findings table (table, source, id, column, kind, masked) over the text columns.

    ``columns`` maps a table name to its text columns to scan, ``id_columns`` a table name to
    its primary key (reported as ``id``; its prefix names the ``source``). Columns a table lacks
    are skipped (the ``columns`` check reports them).
    """
    frames = []
    for table, names in columns.items():
        frame = tables.get(table)
        key = id_columns[table]
        if frame is None or frame.empty or key not in frame.columns:
            continue
        for column in names:
            if column not in frame.columns:
                continue
            for found in scan_text(frame[column], frame[key], patterns):
                found.insert(0, "table", table)
                found.insert(1, "source", [source_of(i) for i in found["id"]])
                found.insert(3, "column", column)
                frames.append(found)
    if not frames:
        return empty_phi_table()
    result = pd.concat(frames, ignore_index=True)[list(PHI_COLUMNS)]
    return (
        result.astype(object)
        .sort_values(["table", "id", "column", "kind"], kind="stable")
        .reset_index(drop=True)
    )


def guard_tables(
    tables: Mapping[str, pd.DataFrame],
    columns: Mapping[str, list[str]],
    id_columns: Mapping[str, str],
    patterns: Mapping[str, str],
    allowed_sources: Collection[str] = (),
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The tables without the records that hold identifiers, and the findings (masked).

    Every record with a finding is quarantined (left out of its table), unless its source is
    opted out (``allowed_sources``: published or consented texts), whose records are kept. A
    quarantined VQA record takes its QA statement pair (``<qid>:qa``) with it. The findings
    table (:data:`GUARD_COLUMNS`) lists each record once per kind and column, with ``action``
    ``quarantined`` or ``kept (source opted out)``: nothing is lost, the records stay in the
    source files, named by their ids.
    """
    findings = scan_tables(tables, columns, id_columns, patterns)
    allowed = set(allowed_sources)
    findings["action"] = [
        KEPT_OPTED_OUT if source in allowed else QUARANTINED for source in findings["source"]
    ]
    findings = findings[list(GUARD_COLUMNS)].astype(object)
    quarantined = findings[findings["action"] == QUARANTINED]
    out = dict(tables)
    for table, key in id_columns.items():
        frame = tables.get(table)
        if frame is None or frame.empty:
            continue
        ids = set(quarantined.loc[quarantined["table"] == table, "id"])
        if table == "pairs":  # the QA statements of quarantined VQA records
            ids |= {f"{qid}:qa" for qid in quarantined.loc[quarantined["table"] == "vqa", "id"]}
        if ids:
            out[table] = frame[~frame[key].astype(str).isin(ids)].reset_index(drop=True)
    return out, findings


FIXTURE = Path(__file__).with_name("phi_sentences.tsv")


def guard_quality(patterns: Mapping[str, str], fixture: Path = FIXTURE) -> dict[str, Any]:
    """Recall and false-positive rate of ``patterns`` on the labelled report sentences of
    ``fixture`` (``label`` phi | clean, ``kind``, ``sentence``; ``#`` lines are comments)."""
    with fixture.open(encoding="utf-8", newline="") as handle:
        lines = (line for line in handle if not line.startswith("#"))
        sentences = pd.DataFrame(list(csv.DictReader(lines, delimiter="\t")))
    texts = sentences["sentence"].astype(object)
    ids = pd.Series(texts.index.astype(str), index=texts.index)
    found = scan_text(texts, ids, patterns)
    hit = set(pd.concat(found)["id"]) if found else set()
    flagged = pd.Series([str(i) in hit for i in texts.index], index=texts.index)
    positives, negatives = sentences["label"] == "phi", sentences["label"] == "clean"
    return {
        "recall": round(float(flagged[positives].mean()), 4),
        "false_positive_rate": round(float(flagged[negatives].mean()), 4),
        "positives": int(positives.sum()),
        "negatives": int(negatives.sum()),
        "fixture": f"robust_mmr_pipeline/validation/{fixture.name}",
    }
