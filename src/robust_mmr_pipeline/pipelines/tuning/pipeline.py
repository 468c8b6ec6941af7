"""Tuning: Optuna study over λ_dc, λ_mr and the perturbation settings (not in the default chain).

Several ``kedro run --pipelines tuning`` processes pointed at the same ``tuning.storage`` share
one study.
"""

from kedro.pipeline import Pipeline, node, pipeline

from robust_mmr_pipeline.pipelines.tuning.nodes import tune_robust_weights


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                tune_robust_weights,
                inputs=[
                    "split_pairs",
                    "split_vqa",
                    "image_cache",
                    "tokenizer",
                    "params:pretrain",
                    "params:tuning",
                ],
                outputs=[
                    "tuning_summary",
                    "tuning_params_string",
                    "tuning_trials",
                    "tuning_optimization_history",
                    "tuning_param_importances",
                    "tuning_parallel_coordinate",
                ],
                name="tune_robust_weights",
            )
        ]
    )
