"""Worker for the DDP replacement test: ``python -m torch.distributed.run --nproc_per_node 2
ddp_replace_script.py OUT_DIR MAX_STEPS``: every process calls ``start_run``, trains and
publishes, as the recipes do; the main process writes ``result.json``."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from engine_test_support import RegressionDataset, make_model

from robust_mmr_pipeline.engine import TrainerConfig, start_run, train


def main(out_dir: Path, max_steps: int) -> None:
    torch.set_num_threads(1)
    config = TrainerConfig(
        max_steps=max_steps, batch_size=8, checkpoint_every=1, progress_bar=False,
        output_dir=str(out_dir / "run"),
    )  # fmt: skip
    target = start_run(config.output_dir)
    result = train(make_model(seed=0, tie=True), RegressionDataset(n=40), dataclasses.replace(
        config, output_dir=str(target.write_dir)))  # fmt: skip
    leftover = target.publish()
    if torch.distributed.get_rank() == 0:
        payload = {
            "staged": target.staged,
            "final": str(target.final_path(result.checkpoint_dir)),
            "leftover": sorted(p.name for p in leftover),
        }
        (out_dir / f"result-{max_steps}.json").write_text(json.dumps(payload))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
