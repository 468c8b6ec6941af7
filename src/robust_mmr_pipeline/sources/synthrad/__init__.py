"""SynthRad: an embedded, procedural, multi-site radiology dataset.

Deterministic and vectorised: chest X-ray-like projections, head CT-like and abdomen CT/MR-like
slices with findings rendered into the pixels, acquisition sites with their own image signature
and reporting style, reports, captions, QA pairs and classification labels from one ground truth.

Example::

    config = SynthRadConfig(n_studies=8)                  # 4 default sites, site_d held out
    images, studies = generate_studies(config)            # uint8 [8, 128, 128], 8 dicts
    tables = write_synthrad(config, Path("data/01_raw/synthrad"))   # PNGs + SourceTables

Modules: ``config`` (SiteConfig, SynthRadConfig), ``plan`` (what each study is), ``chest`` /
``head`` / ``abdomen`` (anatomy and findings), ``acquisition`` (site signatures), ``text`` and
``qa`` (reports, captions, questions), ``generate`` (in memory), ``writer`` (PNGs + tables).
"""

from robust_mmr_pipeline.sources.synthrad.catalog import FAMILIES, FINDING_NAMES, LABELS, MODALITIES
from robust_mmr_pipeline.sources.synthrad.config import SiteConfig, SynthRadConfig, default_sites
from robust_mmr_pipeline.sources.synthrad.generate import generate_studies
from robust_mmr_pipeline.sources.synthrad.styles import REPORT_STYLES, STYLE_NAMES
from robust_mmr_pipeline.sources.synthrad.writer import write_synthrad

__all__ = [
    "FAMILIES",
    "FINDING_NAMES",
    "LABELS",
    "MODALITIES",
    "REPORT_STYLES",
    "STYLE_NAMES",
    "SiteConfig",
    "SynthRadConfig",
    "default_sites",
    "generate_studies",
    "write_synthrad",
]
