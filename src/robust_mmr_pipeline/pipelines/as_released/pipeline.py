"""as_released: the main fine-tuning and evaluation nodes, rewired to the as_released protocol.

Namespace ``as_released``: ``configure_as_released`` composes the branch's parameters (the main
``params:finetune`` / ``params:evaluation`` with ``params:as_released`` merged over them, the
protocol set to ``as_released``), then every node of the finetune and evaluation pipelines runs
with them (the main pipelines' own node functions, so a change there reaches the branch), each
in the MLflow child run ``as_released``. It reads the shared upstream outputs (split manifests,
image cache, tokenizer, pre-trained backbone: pre-training stays on the image-disjoint
protocol, so the backbone never saw a test image) and writes under
``data/06_models/finetune_as_released/`` and ``data/08_reporting/as_released/``.
``published_benchmark`` then puts the clean test numbers of every protocol beside the published
references (``data/08_reporting/published_benchmark.md`` and ``.html``).

Registered as ``as_released`` (after a ``kedro run``) and, with the default chain before it, as
``published`` (``kedro run --env vqa_rad --pipelines published``).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from robust_mmr_pipeline.pipelines import evaluation, finetune
from robust_mmr_pipeline.pipelines.as_released.nodes import (
    configure_as_released,
    in_branch_run,
    published_benchmark,
)
from robust_mmr_pipeline.pipelines.as_released.params import PROTOCOL

SECTIONS = ("finetune", "evaluation")


def _branch_nodes() -> list:
    nodes = []
    for source, section in (
        (finetune.create_pipeline(), "finetune"),
        (evaluation.create_pipeline(), "evaluation"),
    ):
        for original in source.nodes:
            inputs = [
                f"{section}_params" if i == f"params:{section}" else i for i in original.inputs
            ]
            outputs = original.outputs
            nodes.append(
                node(
                    in_branch_run(original.func),
                    inputs=inputs,
                    outputs=outputs[0] if len(outputs) == 1 else outputs,
                    name=original.name,
                )
            )
    return nodes


def create_pipeline(**kwargs) -> Pipeline:
    configure = node(
        configure_as_released,
        inputs=["params:as_released", "params:finetune", "params:evaluation"],
        outputs=[f"{section}_params" for section in SECTIONS],
        name="configure_as_released",
    )
    nodes = [configure, *_branch_nodes()]
    produced = {output for n in nodes for output in n.outputs}
    consumed = {i for n in nodes for i in n.inputs}
    branch = pipeline(
        nodes,
        namespace=PROTOCOL,
        inputs={i for i in consumed - produced if not i.startswith("params:")},
        parameters={i for i in consumed if i.startswith("params:")},
    )
    benchmark = node(
        published_benchmark,
        inputs=[
            "evaluation_results",
            f"{PROTOCOL}.evaluation_results",
            "domain_split_summary",
            "params:references",
            "params:ingestion",
        ],
        outputs=["published_benchmark", "published_benchmark_md", "published_benchmark_html"],
        name="published_benchmark",
        namespace=PROTOCOL,  # it reads the branch's namespaced results
    )
    return branch + pipeline([benchmark])
