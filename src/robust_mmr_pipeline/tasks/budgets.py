"""Label budgets: nested subsets of a task's labeled train rows (ConVIRT / GLoRIA / MGCA style).

A budget is a fraction of the train rows. Images, not rows, are drawn (all the questions about an
image come together, as a labeller annotates an image), in the order of a seeded hash of their
id, until the budget's share of rows is reached. So the 1 % rows are inside the 10 % rows,
which are inside 100 %; and every model (pre-trained, from scratch, frozen probe) of one budget
sees exactly the same rows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from robust_mmr_pipeline.splits.assign import unit_hashes

FULL = 1.0


def budget_label(fraction: float) -> str:
    """``"10%"`` for 0.1, ``"100%"`` for 1.0, ``"2.5%"`` for 0.025."""
    percent = 100.0 * fraction
    return f"{percent:g}%"


def budget_rows(rows: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """The rows of the first images in seeded-hash order holding ``ceil(fraction * len(rows))``
    rows (at least one image), in their original order. ``fraction`` 1.0 returns ``rows``."""
    if not 0.0 < fraction <= FULL:
        raise ValueError(f"a label budget is a fraction in (0, 1], got {fraction}")
    if fraction >= FULL or rows.empty:
        return rows
    per_image = rows.groupby("image_id", sort=False).size()
    order = np.argsort(unit_hashes(seed, per_image.index.astype(str)), kind="stable")
    counts = per_image.to_numpy()[order]
    needed = math.ceil(fraction * len(rows))
    taken = int(np.searchsorted(np.cumsum(counts), needed)) + 1
    chosen = set(per_image.index[order[:taken]])
    return rows[rows["image_id"].isin(chosen)].reset_index(drop=True)
