"""One report template family (jinja2) for the robustness, ablation and validation reports.

``templates/report.html.j2`` is the layout and style every HTML report shares (headline cards
first, then figures, then the long tables folded in ``<details>``); ``templates/report.md.j2``
renders the same context as Markdown (its tables by :func:`.markdown.markdown_table`). The context
of :func:`render` is plain data: ``title``, ``meta`` (key -> value), ``cards`` (headline cards:
``title``, ``subtitle``, ``table`` = header + rows, ``verdicts``), ``figures`` (``caption``,
``path``, ``base64``), ``sections`` (``title``, ``note``, ``header``, ``rows``, ``open``).
"""

from __future__ import annotations

import base64
import io
from functools import cache
from typing import Any

import jinja2

from robust_mmr_pipeline.reporting.markdown import markdown_table


@cache
def _environment(autoescape: bool) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("robust_mmr_pipeline.reporting", "templates"),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.globals["markdown_table"] = markdown_table
    return environment


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` (HTML templates are auto-escaped)."""
    return _environment(template.endswith(".html.j2")).get_template(template).render(**context)


def figure_to_base64(figure: Any, dpi: int = 100) -> str:
    """The figure as a base64 PNG (for ``<img src="data:image/png;base64,...">``)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
