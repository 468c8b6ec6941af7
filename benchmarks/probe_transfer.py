"""Does a pre-trained backbone's feature transfer across sites? A validation-only probe.

Run after the upstream pipelines (`make run`, or `kedro run --pipelines ingestion,validation,
domain_split,pretrain`) from the project folder. A logistic-regression probe (features
standardised, ``C`` chosen on the in-domain val rows) is fitted on the frozen features of the
in-domain classification TRAIN rows of every training site but ``--held-site``, then scored on
every train + val row of ``--held-site``: a held-out TRAINING site standing in for the
cross-domain test, so recipes can be compared without reading a test row. Three features per
backbone: the text encoder's token mean (``text_encoder``), the image encoder's patch mean
(``image_encoder``) and the fused feature the task heads read (``fused``); ``--random`` adds
the same probes on a randomly initialised backbone of the same architecture.

    python benchmarks/probe_transfer.py --random \
        --checkpoint data/06_models/pretrain/robust_mmr/best/step-00000200
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from robust_mmr_pipeline.engine import ImageCache, load_model
from robust_mmr_pipeline.model import MMRModel
from robust_mmr_pipeline.tasks.inputs import EvalInputs, encode_streams

C_GRID = (0.01, 0.1, 1.0, 10.0)


@torch.no_grad()
def features(model: Any, tokenizer: Any, rows: pd.DataFrame, cache: ImageCache) -> dict:
    """``{feature name: [n, d] array}`` for ``rows`` (eval mode, split encoding)."""
    inputs = EvalInputs.from_rows(rows, cache, text_column="text")
    streams = encode_streams(model, inputs, tokenizer, model.config.text.max_length)
    image = streams.images[inputs.row_image]
    text, mask = streams.texts[streams.row_text], streams.mask[streams.row_text]
    weight = mask.unsqueeze(-1).float()
    found = {
        "text_encoder": (text * weight).sum(1) / weight.sum(1),
        "image_encoder": image.mean(1),
        "fused": model.fuse(image, text, mask),
    }
    return {name: value.float().numpy() for name, value in found.items()}


def probe(train: np.ndarray, val: np.ndarray, held: np.ndarray, y: dict) -> dict[str, float]:
    """Fit on ``train``, pick ``C`` on ``val``, score ``held`` once with that ``C``."""
    scaler = StandardScaler().fit(train)
    x_train, x_val, x_held = (scaler.transform(a) for a in (train, val, held))
    best: dict[str, float] = {}
    for c in C_GRID:
        fit = LogisticRegression(C=c, max_iter=3000).fit(x_train, y["train"])
        val_accuracy = fit.score(x_val, y["val"])
        if not best or val_accuracy > best["val"]:
            best = {"C": c, "val": val_accuracy, "held_site": fit.score(x_held, y["held"])}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a pre-training checkpoint folder")
    parser.add_argument("--held-site", default="site_c", help="a TRAINING site to hold out")
    parser.add_argument("--random", action="store_true", help="also a random-init backbone")
    parser.add_argument("--cache", default="data/04_feature/image_cache")
    parser.add_argument(
        "--split", default="data/05_model_input/split_classification.parquet", type=Path
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON result path")
    args = parser.parse_args()

    table = pd.read_parquet(args.split)
    table = table[(table["protocol"] == "in_domain") & table["split"].isin(["train", "val"])]
    if args.held_site not in set(table["domain"]):
        raise SystemExit(f"--held-site {args.held_site!r} is not a training site of {args.split}")
    other = table["domain"] != args.held_site
    rows = {
        "train": table[other & (table["split"] == "train")],
        "val": table[other & (table["split"] == "val")],
        "held": table[~other],
    }
    y = {name: part["label"].to_numpy() for name, part in rows.items()}
    cache = ImageCache(args.cache)
    trained, tokenizer, _meta = load_model(args.checkpoint)
    backbones = {"pretrained": trained.eval()}
    if args.random:
        torch.manual_seed(0)
        backbones["random"] = MMRModel(trained.config).eval()
    result: dict[str, Any] = {"checkpoint": args.checkpoint, "held_site": args.held_site}
    for name, model in backbones.items():
        found = {part: features(model, tokenizer, r, cache) for part, r in rows.items()}
        result[name] = {
            feature: probe(*(found[part][feature] for part in ("train", "val", "held")), y)
            for feature in found["train"]
        }
        print(name, {f: round(r["held_site"], 3) for f, r in result[name].items()})
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
