"""Typed parameters of the as_released pipeline (``params:as_released``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any

from robust_mmr_pipeline.typed_config import config, deep_merge, lazy_overrides

PROTOCOL = "as_released"


# The branch's sections are these overrides merged over the main ones: typed by those sections.
FinetuneOverrides = lazy_overrides("robust_mmr_pipeline.pipelines.finetune.params:FinetuneParams")
EvaluationOverrides = lazy_overrides(
    "robust_mmr_pipeline.pipelines.evaluation.params:EvaluationParams"
)


@config
class AsReleasedParams:
    """The as_released branch: the main fine-tuning and evaluation, on the ``as_released``
    protocol (domain_split.as_released), with these overrides merged over
    ``params:finetune`` / ``params:evaluation``.

    Fine-tuning trains on the protocol's train split (the official one; val carved from it
    where the source publishes none) into ``output_dir``; evaluation scores its test split (the
    official test set) and has no cross-domain test (every domain is in the protocol's train).
    """

    output_dir: str = "data/06_models/finetune_as_released"
    finetune: FinetuneOverrides = field(default_factory=dict)
    evaluation: EvaluationOverrides = field(default_factory=dict)

    def sections(
        self, finetune: Mapping[str, Any] | None, evaluation: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The branch's finetune and evaluation sections from the main ones."""
        tuned = deep_merge(finetune, self.finetune)
        tuned.update(protocol=PROTOCOL, output_dir=self.output_dir)
        scored = deep_merge(evaluation, self.evaluation)
        scored.update(in_domain_protocol=PROTOCOL, cross_domain_protocol="")
        return tuned, scored

    def validate_with(self, parameters: Mapping[str, Any]) -> None:
        """Check the composed sections before the run starts."""
        from robust_mmr_pipeline.params import ParameterError, parse, schema_for

        for section, values in zip(
            ("finetune", "evaluation"),
            self.sections(parameters.get("finetune"), parameters.get("evaluation")),
            strict=True,
        ):
            try:
                parse(schema_for(section), values, section)
            except ValueError as exc:
                raise ParameterError(
                    f"as_released: its {section} section (params:{section} with "
                    f"as_released.{section} merged over it) is invalid: {exc}"
                ) from exc
