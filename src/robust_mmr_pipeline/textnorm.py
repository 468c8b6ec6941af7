"""Unicode hygiene of ingested text: what counts as visible, what is removed, what is refused.

- Invisible characters are removed: every format character (Unicode category ``Cf``: zero-width
  space / joiners, soft hyphen, byte-order mark, word joiner, ...) and the few invisible
  letters a text can be "made of" (Hangul fillers, combining grapheme joiner, variation
  selectors). A text made only of them is empty (``'\\u200b'`` is no question).
- Stored text is NFC (canonical composition, ``e`` + combining acute = ``é``): NFKC would also
  rewrite compatibility characters that carry meaning in a report (``10⁹/L`` -> ``109/L``,
  ``½`` -> ``1⁄2``), so it is used only to decide whether a text is blank.
- Bidirectional embedding / override / isolate controls (U+202A-U+202E, U+2066-U+2069) are
  refused, not removed: they make a text display in another order than it is stored ("Trojan
  Source"), so what a reader of the report sees is not what the model is trained on, and
  removing them silently would change what the author showed. The record is a bad record
  naming the file, the record, the character and the fix.

Both patterns below hold literal characters only, so they mean the same to Python's ``re`` and
to RE2 (the validation suites run them on Arrow strings).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Default-ignorable code points outside Cf that render as nothing.
INVISIBLE_LETTERS = "\u034f\u115f\u1160\u3164\uffa0\u180b\u180c\u180d\u180f" + "".join(
    chr(c) for c in range(0xFE00, 0xFE10)
)
BIDI_PATTERN = f"[{BIDI_CONTROLS}]"
_BIDI = re.compile(BIDI_PATTERN)


@functools.cache
def _format_characters() -> str:
    """Every code point of category Cf (about 170), as a string."""
    return "".join(
        chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"
    )


@functools.cache
def _invisible() -> re.Pattern[str]:
    chars = _format_characters() + INVISIBLE_LETTERS
    return re.compile("[" + "".join(re.escape(c) for c in chars) + "]")


@functools.cache
def visible_char_pattern() -> str:
    """A regex matching one visible character (neither white space nor invisible), for the
    ``text_not_empty`` expectation (Basic Multilingual Plane characters listed literally)."""
    chars = "".join(c for c in _format_characters() + INVISIBLE_LETTERS if ord(c) <= 0xFFFF)
    return "[^\\s" + "".join(re.escape(c) for c in chars) + "]"


def strip_invisible(text: str) -> str:
    """``text`` without format characters (Cf) and invisible letters."""
    return _invisible().sub("", text)


def normalize_text(text: str) -> str:
    """NFC, invisible characters removed, runs of white space collapsed to one space."""
    return " ".join(strip_invisible(unicodedata.normalize("NFC", text)).split())


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: empty once NFKC-normalised and stripped of white space
    and invisible characters."""
    return not strip_invisible(unicodedata.normalize("NFKC", text)).split()


def bidi_controls(text: str) -> list[str]:
    """The bidirectional controls in ``text``, e.g. ``['U+202E RIGHT-TO-LEFT OVERRIDE']``."""
    found = dict.fromkeys(_BIDI.findall(text))
    return [f"U+{ord(c):04X} {unicodedata.name(c)}" for c in found]


BIDI_FIX = (
    "remove the bidirectional control characters from the text (they make it display in "
    "another order than it is stored), or correct the text they reorder"
)


def text_problem(text: str, what: str = "the text") -> str:
    """Why ``text`` cannot be ingested ("" when it can): bidirectional controls, or nothing
    visible (only white space and invisible characters)."""
    controls = bidi_controls(text)
    if controls:
        return (
            f"{what} holds bidirectional control character(s) {', '.join(controls)}: it "
            "displays in another order than it is stored"
        )
    if text and is_blank(text):
        invisible = sorted({f"U+{ord(c):04X}" for c in _invisible().findall(text)})
        listed = f" ({', '.join(invisible)})" if invisible else ""
        return f"{what} is empty once invisible characters{listed} are removed"
    return ""
