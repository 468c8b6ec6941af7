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

- config.py     ``params:requirements``, the skippable keys and the stage-entry nodes
- sources.py    the configured sources and what each declares it gives
- protocols.py  which protocols the domain split will emit from them
- static.py     the check before ingestion, from the declarations
- manifests.py  the check before a stage, from the split manifests' counts
- shortfalls.py a shortfall, and the verdict: raise, or skip what the user allowed
"""

from robust_mmr_pipeline.data_requirements.config import (
    AS_RELEASED_NAMESPACE,
    CROSS_DOMAIN_SKIP,
    SKIPPABLE,
    STAGE_NODES,
    TASK_TABLES,
    RequirementsParams,
)
from robust_mmr_pipeline.data_requirements.manifests import manifest_shortfalls
from robust_mmr_pipeline.data_requirements.protocols import protocol_problem
from robust_mmr_pipeline.data_requirements.shortfalls import (
    DataRequirementsError,
    Shortfall,
    enforce,
    without_skipped,
)
from robust_mmr_pipeline.data_requirements.sources import ConfiguredSource, configured_sources
from robust_mmr_pipeline.data_requirements.static import static_shortfalls

__all__ = [
    "AS_RELEASED_NAMESPACE",
    "CROSS_DOMAIN_SKIP",
    "SKIPPABLE",
    "STAGE_NODES",
    "TASK_TABLES",
    "ConfiguredSource",
    "DataRequirementsError",
    "RequirementsParams",
    "Shortfall",
    "configured_sources",
    "enforce",
    "manifest_shortfalls",
    "protocol_problem",
    "static_shortfalls",
    "without_skipped",
]
