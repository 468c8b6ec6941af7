"""Typed parameters of the ablation pipeline (``params:ablation``) and the per-run composition."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any

from robust_mmr_pipeline.pipelines.ablation.grid import NO_PRETRAINING
from robust_mmr_pipeline.typed_config import config, deep_merge, lazy_overrides

# Each run's sections are these overrides merged over the main ones: typed by those sections.
PretrainOverrides = lazy_overrides("robust_mmr_pipeline.pipelines.pretrain.params:PretrainParams")
FinetuneOverrides = lazy_overrides("robust_mmr_pipeline.pipelines.finetune.params:FinetuneParams")
EvaluationOverrides = lazy_overrides(
    "robust_mmr_pipeline.pipelines.evaluation.params:EvaluationParams"
)


@config
class AblationParams:
    """How every ablation run differs from the main pipelines' parameters.

    ``pretrain`` / ``finetune`` / ``evaluation`` are deep-merged over ``params:pretrain`` /
    ``params:finetune`` / ``params:evaluation`` for every run (e.g. shorter training); then each
    run sets its preset (``no_pretraining`` fine-tunes ``scratch_preset``'s architecture from
    random weights), its seed (pre-training and fine-tuning ``trainer.seed``: data order,
    initial weights, masking) and its own output folder under ``output_dir``. ``reference``
    is the mCE baseline and the gap's subtrahend, ``focus`` the gap's minuend.
    """

    reference: str = "mmr"
    focus: str = "robust_mmr"
    scratch_preset: str = "mmr"
    output_dir: str = "data/06_models/ablation"
    pretrain: PretrainOverrides = field(default_factory=dict)
    finetune: FinetuneOverrides = field(default_factory=dict)
    evaluation: EvaluationOverrides = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("preset", "output_dir", "register_model"):
            if name in self.pretrain:
                raise ValueError(f"ablation.pretrain.{name} is set per run; remove it")
        for name in ("from_scratch", "output_dir"):
            if name in self.finetune:
                raise ValueError(f"ablation.finetune.{name} is set per run; remove it")
        if "baseline_metrics" in self.evaluation:
            raise ValueError(
                "ablation.evaluation.baseline_metrics: the ablation's mCE baseline is "
                "ablation.reference (the same seed's run); remove it"
            )

    def run_dir(self, setting: str, seed: int) -> str:
        return f"{self.output_dir}/{setting}/seed_{seed}"

    def run_parameters(
        self, setting: str, seed: int, base: Mapping[str, Any]
    ) -> dict[str, dict[str, Any]]:
        """The ``pretrain`` / ``finetune`` / ``evaluation`` sections of one run, from the
        project's parameters ``base`` (plain dicts, as ``params:<section>`` would be)."""
        root = self.run_dir(setting, seed)
        preset = self.scratch_preset if setting == NO_PRETRAINING else setting
        pretrain = deep_merge(base.get("pretrain"), self.pretrain)
        pretrain.update(preset=preset, output_dir=f"{root}/pretrain", register_model=False)
        pretrain["trainer"] = {**pretrain.get("trainer", {}), "seed": int(seed)}
        finetune = deep_merge(base.get("finetune"), self.finetune)
        finetune.update(from_scratch=setting == NO_PRETRAINING, output_dir=f"{root}/finetune")
        finetune["trainer"] = {**finetune.get("trainer", {}), "seed": int(seed)}
        evaluation = deep_merge(base.get("evaluation"), self.evaluation)
        evaluation["baseline_metrics"] = None
        return {"pretrain": pretrain, "finetune": finetune, "evaluation": evaluation}

    def validate_with(self, parameters: Mapping[str, Any]) -> None:
        """Check the grid and every run's composed sections before the run starts."""
        from robust_mmr_pipeline.params import ParameterError, parse, schema_for
        from robust_mmr_pipeline.pipelines.ablation.grid import ablation_seeds, ablation_settings

        settings = ablation_settings()
        for name in ("reference", "focus"):
            value = getattr(self, name)
            if value not in settings:
                raise ValueError(
                    f"ablation.{name} is {value!r}, which is not in the ablation grid "
                    f"{list(settings)} (see pipelines/ablation/grid.py)"
                )
        for setting in settings:
            for seed in ablation_seeds():
                sections = self.run_parameters(setting, seed, parameters)
                for section, values in sections.items():
                    try:
                        parse(schema_for(section), values, section)
                    except ValueError as exc:
                        raise ParameterError(
                            f"ablation run {setting}/seed_{seed}: its {section} section "
                            f"(params:{section} with ablation.{section} merged over it) is "
                            f"invalid; fix conf/*/parameters_{section}.yml or "
                            f"conf/*/parameters_ablation.yml:\n{exc}"
                        ) from exc
