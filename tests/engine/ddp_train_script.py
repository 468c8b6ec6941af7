"""Worker for the DDP test: run as ``python ddp_train_script.py OUT_DIR`` (one process) or under
``python -m torch.distributed.run --nproc_per_node 2`` (two gloo processes on CPU).

Trains TinyModel for a few steps (global batch 8, grad_accum 2), then runs ``predict`` over 10
samples, and writes ``result.json`` (per-step losses, final parameters, predictions) from the
main process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from engine_test_support import RegressionDataset, make_model
from torch.utils.data import DataLoader

from robust_mmr_pipeline.engine import TrainerConfig, load_model, predict, train


def main(out_dir: Path) -> None:
    """Train, predict, and dump what the test compares."""
    torch.set_num_threads(1)
    config = TrainerConfig(
        max_steps=5,
        batch_size=8,
        grad_accum=2,
        lr=5e-2,
        warmup_fraction=0.2,
        max_grad_norm=1.0,
        checkpoint_every=2,
        log_every=1,
        progress_bar=False,
        seed=7,
        output_dir=str(out_dir / "run"),
    )
    model = make_model(seed=0, tie=True)
    result = train(model, RegressionDataset(n=40), config)
    loader = DataLoader(RegressionDataset(n=10, seed=4), batch_size=3)
    from accelerate import Accelerator

    outputs = predict(model, loader, accelerator=Accelerator(), keys=("prediction",))
    if result.world_size == 1 or torch.distributed.get_rank() == 0:
        reloaded, _tokenizer, meta = load_model(result.checkpoint_dir)
        payload = {
            "world_size": result.world_size,
            "losses": result.losses,
            "params": {n: p.detach().tolist() for n, p in model.named_parameters()},
            "reloaded_equal": all(
                torch.equal(p.detach().cpu(), q)
                for p, q in zip(model.parameters(), reloaded.parameters(), strict=True)
            ),
            "rng_ranks": len(json.loads((result.checkpoint_dir / "rng.json").read_text())["ranks"]),
            "saved_step": meta["trainer_state"]["step"],
            "predictions": outputs["prediction"].tolist(),
        }
        (out_dir / "result.json").write_text(json.dumps(payload))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
