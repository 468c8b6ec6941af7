"""Data validation of the unified tables, before any GPU hour is spent on them.

Plain Python (pandas, PIL, Great Expectations; no Kedro):

- :mod:`.checks`: the catalogue of check names and their default severity;
- :mod:`.config`: :class:`~.config.ValidationParams`, the typed ``params:validation``;
- :mod:`.images`: the per-image file check (exists, decodes, size, mode, bytes);
- :mod:`.phi`: the PHI guard (vectorised regexes -> a table of warnings);
- :mod:`.frames`: the frames to validate, with derived per-row columns;
- :mod:`.suites`: the expectation suites per frame, built from the parameters;
- :mod:`.run`: runs the suites in an ephemeral GX context and gathers the summary;
- :mod:`.summaries`: class balance, per-domain counts, vocabulary, leaks per source;
- :mod:`.report`: Markdown/HTML rendering, the report files, :class:`~.report.DataValidationError`.

Great Expectations is imported only when suites run, so importing this package stays cheap.
"""

from robust_mmr_pipeline.validation.report import DataValidationError

__all__ = ["DataValidationError"]
