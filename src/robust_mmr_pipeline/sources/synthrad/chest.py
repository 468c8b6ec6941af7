"""Chest X-ray-like PA projections.

Tissues add attenuation along the ray (ellipsoid thickness profiles), air in the lungs removes
it, and the detector shows ``1 - exp(-k d)``: bone and heart bright, aerated lung dark.
Lung index 0 is the patient's right lung (image left, ``u < 0``), 1 the left lung.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robust_mmr_pipeline.sources.synthrad.catalog import FINDING_INDEX
from robust_mmr_pipeline.sources.synthrad.plan import StudyPlan, lesion_radius
from robust_mmr_pipeline.sources.synthrad.primitives import (
    F32,
    Canvas,
    add_ellipsoid,
    box,
    col,
    ellipsoid,
    quad,
    rotated_extent,
    sharpness,
    soft,
    union_box,
)

NODULE = FINDING_INDEX["nodule"]
EFFUSION = FINDING_INDEX["effusion"]
CARDIOMEGALY = FINDING_INDEX["cardiomegaly"]
PNEUMOTHORAX = FINDING_INDEX["pneumothorax"]
BILATERAL = 2  # index of "bilateral" in the effusion sides

# Nodule zones as bands of lung-normalised height (-1 apex, +1 base).
ZONES = ((-0.8, -0.4), (-0.3, 0.1), (0.2, 0.5))
EFFUSION_LEVEL = (0.55, 0.25, -0.05)  # fluid top (lung-normalised) by size
COLLAPSE = (0.85, 0.72, 0.58)  # remaining lung fraction by pneumothorax size
HEART_ENLARGED = (0.33, 0.38, 0.44)  # heart semi-width by cardiomegaly severity


def _span(a: np.ndarray, k: int, lo: float, hi: float) -> np.ndarray:
    return (lo + (hi - lo) * a[:, k]).astype(F32)


@dataclass
class ChestAnatomy:
    """Per-study geometry (float32 [n], lungs [n, 2] with 0 = right lung, 1 = left lung)."""

    body_cx: np.ndarray
    body_ax: np.ndarray
    lung_u: np.ndarray
    lung_v: np.ndarray
    lung_ax: np.ndarray
    lung_ay: np.ndarray
    lung_angle: np.ndarray
    heart_u: np.ndarray
    heart_v: np.ndarray
    heart_ax: np.ndarray
    heart_ay: np.ndarray
    heart_angle: np.ndarray
    spine_w: np.ndarray
    spine_period: np.ndarray
    spine_phase: np.ndarray
    rib_period: np.ndarray
    rib_curve: np.ndarray
    rib_phase: np.ndarray
    clavicle_v: np.ndarray
    exposure: np.ndarray


def anatomy(p: StudyPlan, with_findings: bool = True) -> ChestAnatomy:
    a = p.anatomy
    lung_off = _span(a, 2, 0.36, 0.43)
    asym = _span(a, 7, -0.03, 0.03)
    lung_ax = _span(a, 4, 0.25, 0.3)
    lung_ay = _span(a, 5, 0.5, 0.6)
    lung_v = _span(a, 3, -0.16, -0.06)
    tilt = _span(a, 6, 0.04, 0.14)
    heart_ax = _span(a, 10, 0.22, 0.27)
    heart_ay = _span(a, 11, 0.17, 0.21)
    if with_findings:
        enlarged = p.has[:, CARDIOMEGALY]
        severity = np.clip(p.size[:, CARDIOMEGALY], 0, 2)
        big = np.asarray(HEART_ENLARGED, F32)[severity] + 0.02 * p.shape[:, CARDIOMEGALY, 0]
        heart_ax = np.where(enlarged, big, heart_ax).astype(F32)
        heart_ay = np.where(enlarged, heart_ay * 1.12, heart_ay).astype(F32)
    return ChestAnatomy(
        body_cx=_span(a, 1, -0.03, 0.03),
        body_ax=_span(a, 0, 0.84, 0.95),
        # The left lung sits lower (heart and hemidiaphragm) and is slightly narrower.
        lung_u=np.stack([-lung_off + asym, lung_off + asym], axis=1),
        lung_v=np.stack([lung_v, lung_v + 0.03], axis=1).astype(F32),
        lung_ax=np.stack([lung_ax, lung_ax * 0.95], axis=1).astype(F32),
        lung_ay=np.stack([lung_ay, lung_ay * 1.02], axis=1).astype(F32),
        # Apices lean towards the midline.
        lung_angle=np.stack([tilt, -tilt], axis=1),
        heart_u=_span(a, 8, 0.06, 0.12),
        heart_v=_span(a, 9, 0.2, 0.27),
        heart_ax=heart_ax,
        heart_ay=heart_ay,
        heart_angle=_span(a, 12, 0.25, 0.45),
        spine_w=_span(a, 13, 0.06, 0.085),
        spine_period=_span(a, 14, 0.12, 0.16),
        spine_phase=_span(a, 15, 0.0, 1.0),
        rib_period=_span(a, 16, 0.15, 0.19),
        rib_curve=_span(a, 17, 0.3, 0.55),
        rib_phase=_span(a, 18, 0.0, 1.0),
        clavicle_v=_span(a, 19, -0.8, -0.7),
        exposure=_span(a, 20, 1.1, 1.45),
    )


def _lung_point(
    an: ChestAnatomy, side: np.ndarray, ru: np.ndarray, rv: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World (u, v) of lung-normalised offsets (ru, rv) in lung ``side`` [n]; ru, rv [n, k]."""
    rows = np.arange(len(side))
    cu, cv = an.lung_u[rows, side][:, None], an.lung_v[rows, side][:, None]
    ax, ay = an.lung_ax[rows, side][:, None], an.lung_ay[rows, side][:, None]
    ang = an.lung_angle[rows, side][:, None]
    x, y = ru * ax, rv * ay
    return cu + x * np.cos(ang) - y * np.sin(ang), cv + x * np.sin(ang) + y * np.cos(ang)


def nodules(p: StudyPlan, an: ChestAnatomy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodule centres u, v and radii, float32 [n, 3] (radius 0 where no lesion)."""
    side = np.clip(p.side[:, NODULE], 0, 1)
    zone = np.asarray(ZONES, F32)[np.clip(p.region[:, NODULE], 0, 2)]
    pos = p.pos[:, NODULE].astype(F32)
    rv = zone[:, :1] + (zone[:, 1:] - zone[:, :1]) * pos[:, :, 1]
    ru = (-0.55 + 1.1 * pos[:, :, 0]) * np.sqrt(1.0 - rv * rv)
    u, v = _lung_point(an, side, ru, rv)
    return u.astype(F32), v.astype(F32), lesion_radius(p, NODULE)


def render(
    c: Canvas, p: StudyPlan, coarse: np.ndarray, fine: np.ndarray, with_findings: bool = True
) -> np.ndarray:
    """Render ``p`` (all chest studies) into a pool buffer: float32 ``[n, S, S]`` in [0, 1].

    coarse, fine: smooth unit-variance random fields ``[n, S, S]`` (read only).
    """
    n = len(p)
    an = anatomy(p, with_findings)
    d = ellipsoid(c, an.body_cx, 0.08, an.body_ax, 1.7)
    d *= 1.1
    lungs = [
        ellipsoid(
            c,
            an.lung_u[:, s],
            an.lung_v[:, s],
            an.lung_ax[:, s],
            an.lung_ay[:, s],
            an.lung_angle[:, s],
        )
        for s in (0, 1)
    ]
    lung_mask = np.add(lungs[0], lungs[1], out=c.take(n))
    lung_mask *= 0.9
    d -= lung_mask  # air in the lungs removes attenuation
    lung_mask *= 4.0 / 0.9
    np.clip(lung_mask, 0.0, 1.0, out=lung_mask)
    heart = ellipsoid(c, an.heart_u, an.heart_v, an.heart_ax, an.heart_ay, an.heart_angle)
    heart *= 0.75
    d += heart

    # Spine: a vertical band modulated by vertebral bodies.
    prof = np.clip((col(an.spine_w) - np.abs(c.u - col(an.body_cx))) / F32(c.px) + 0.5, 0.0, 1.0)
    mod = 0.75 + 0.25 * np.cos(2 * np.pi * (c.v / col(an.spine_period) + col(an.spine_phase)))
    tmp = np.multiply(0.45 * prof, mod, out=heart)
    d += tmp
    # Posterior ribs: arcs v = v0 + c u^2 repeating with the rib period, shown over the lungs.
    two_pi = F32(2 * np.pi)
    ribs = np.subtract(
        two_pi * (c.v / col(an.rib_period) + col(an.rib_phase)),
        two_pi * col(an.rib_curve / an.rib_period) * c.u * c.u,
        out=tmp,
    )
    np.cos(ribs, out=ribs)
    ribs -= 0.6
    ribs *= 4.0
    np.clip(ribs, 0.0, 1.0, out=ribs)
    ribs *= lung_mask
    ribs *= 0.16
    d += ribs
    c.give(ribs)
    add_ellipsoid(c, d, 0.4, 0.3, an.clavicle_v, 0.32, 0.035, np.full(n, -0.25, F32), mirror=True)

    markings_mask = lung_mask
    if with_findings:
        markings_mask = c.take(n)
        np.copyto(markings_mask, lung_mask)
        _effusion(c, p, an, d, lungs)
        _pneumothorax(c, p, an, d, lungs, markings_mask)
        _nodules(c, p, an, d)

    # Vessel markings: thin ridges along the zero set of a smooth random field.
    ridges = np.abs(fine, out=c.take(n))
    ridges *= -6.0
    ridges += 1.0
    np.clip(ridges, 0.0, 1.0, out=ridges)
    ridges *= markings_mask
    ridges *= 0.15
    d += ridges
    np.multiply(coarse, 0.04, out=ridges)
    ridges *= lung_mask
    d += ridges
    c.give(ridges, lungs[0], lungs[1], lung_mask)
    if markings_mask is not lung_mask:
        c.give(markings_mask)

    np.clip(d, 0.0, np.inf, out=d)
    d *= -col(an.exposure)
    np.exp(d, out=d)
    np.subtract(1.0, d, out=d)
    return d


def _effusion(
    c: Canvas, p: StudyPlan, an: ChestAnatomy, d: np.ndarray, lungs: list[np.ndarray]
) -> None:
    has = p.has[:, EFFUSION]
    level = np.asarray(EFFUSION_LEVEL, F32)[np.clip(p.size[:, EFFUSION], 0, 2)]
    for s, lateral in ((0, -1.0), (1, 1.0)):
        rows = np.flatnonzero(
            has & ((p.side[:, EFFUSION] == s) | (p.side[:, EFFUSION] == BILATERAL))
        )
        if not len(rows):
            continue
        cu, cv = col(an.lung_u[rows, s]), col(an.lung_v[rows, s])
        ax, ay = col(an.lung_ax[rows, s]), col(an.lung_ay[rows, s])
        # Meniscus: the fluid surface curves up towards the lateral chest wall.
        lat = np.clip((c.u - cu) * lateral / ax, -1.0, 1.0)
        top = cv + ay * (col(level[rows]) - 0.6 * ((lat + 1.0) * 0.5) ** 2)
        fluid = np.subtract(c.v, top, out=c.take(len(rows)))
        fluid *= F32(0.5 / c.px)
        fluid += 0.5
        np.clip(fluid, 0.0, 1.0, out=fluid)
        t = c.gather(lungs[s], rows)
        amount = np.multiply(t, 4.0, out=c.take(len(rows)))
        np.clip(amount, 0.0, 1.0, out=amount)
        fluid *= amount
        t *= 0.9
        t += 0.15
        fluid *= t  # fluid restores the attenuation the aerated lung had removed
        c.give(t, amount)
        c.add_rows(d, rows, fluid)


def _pneumothorax(
    c: Canvas,
    p: StudyPlan,
    an: ChestAnatomy,
    d: np.ndarray,
    lungs: list[np.ndarray],
    markings_mask: np.ndarray,
) -> None:
    has = p.has[:, PNEUMOTHORAX]
    for s, medial in ((0, 1.0), (1, -1.0)):
        rows = np.flatnonzero(has & (p.side[:, PNEUMOTHORAX] == s))
        if not len(rows):
            continue
        m = len(rows)
        f = np.asarray(COLLAPSE, F32)[np.clip(p.size[rows, PNEUMOTHORAX], 0, 2)]
        ax, ay = an.lung_ax[rows, s], an.lung_ay[rows, s]
        # The lung collapses towards the hilum: medially and downwards.
        cu = an.lung_u[rows, s] + medial * (1 - f) * ax * 0.8
        cv = an.lung_v[rows, s] + (1 - f) * ay * 0.45
        qc = quad(c, cu, cv, f * ax, f * ay, an.lung_angle[rows, s])
        line = np.subtract(qc, 1.0, out=c.take(m))
        np.abs(line, out=line)
        line *= -col(np.minimum(f * ax, f * ay) / F32(1.5 * c.px))
        line += 1.0
        np.clip(line, 0.0, 1.0, out=line)
        inside = soft(qc, sharpness(c, f * ax, f * ay))
        lmask = c.gather(lungs[s], rows)
        lmask *= 4.0
        np.clip(lmask, 0.0, 1.0, out=lmask)
        space = np.subtract(1.0, inside, out=inside)
        space *= lmask  # pleural space: inside the lung outline, outside the collapsed lung
        change = np.multiply(line, lmask, out=line)
        change *= 0.4
        # No vessel markings in the pleural space.
        kept = c.gather(markings_mask, rows)
        kept *= np.subtract(1.0, space, out=lmask)
        markings_mask[rows] = kept
        space *= 0.25
        change -= space
        c.add_rows(d, rows, change)
        c.give(kept, space, lmask)


def _nodules(c: Canvas, p: StudyPlan, an: ChestAnatomy, d: np.ndarray) -> None:
    u, v, r = nodules(p, an)
    aspect = 0.85 + 0.3 * p.shape[:, NODULE].astype(F32)
    for k in range(r.shape[1]):
        rows = np.flatnonzero(p.has[:, NODULE] & (p.count[:, NODULE] > k))
        if len(rows):
            sub = c.gather(d, rows)
            rr = r[rows, k]
            add_ellipsoid(c, sub, 0.75, u[rows, k], v[rows, k], rr, rr * aspect[rows, k])
            d[rows] = sub
            c.give(sub)


def annotate(p: StudyPlan, size: int) -> tuple[dict[int, np.ndarray], dict[str, np.ndarray]]:
    """Finding boxes (pixels, [n, 4] per finding index) and measurements (``ctr`` [n])."""
    an = anatomy(p)
    lung_hx, lung_hy = rotated_extent(an.lung_ax, an.lung_ay, an.lung_angle)
    heart_hx, heart_hy = rotated_extent(an.heart_ax, an.heart_ay, an.heart_angle)
    thorax = (an.lung_u[:, 1] + lung_hx[:, 1]) - (an.lung_u[:, 0] - lung_hx[:, 0])
    boxes: dict[int, np.ndarray] = {}

    boxes[NODULE] = union_box(*nodules(p, an), size)

    lung_boxes = [
        box(an.lung_u[:, s], an.lung_v[:, s], lung_hx[:, s], lung_hy[:, s], size) for s in (0, 1)
    ]
    both = np.concatenate(
        [
            np.minimum(lung_boxes[0][:, :2], lung_boxes[1][:, :2]),
            np.maximum(lung_boxes[0][:, 2:], lung_boxes[1][:, 2:]),
        ],
        axis=1,
    )

    def by_side(finding: int) -> np.ndarray:
        side = p.side[:, finding]
        return np.where(
            (side == 0)[:, None], lung_boxes[0], np.where((side == 1)[:, None], lung_boxes[1], both)
        )

    eff = by_side(EFFUSION).copy()
    level = np.asarray(EFFUSION_LEVEL, F32)[np.clip(p.size[:, EFFUSION], 0, 2)]
    # Highest point of the meniscus (at the lateral wall) per lung.
    top = an.lung_v + an.lung_ay * (level[:, None] - 0.6)
    side = p.side[:, EFFUSION]
    top_v = np.where(side == 0, top[:, 0], np.where(side == 1, top[:, 1], top.min(axis=1)))
    eff[:, 1] = np.clip((top_v + 1.0) * size / 2.0, 0, size)
    boxes[EFFUSION] = eff
    boxes[PNEUMOTHORAX] = by_side(PNEUMOTHORAX)
    boxes[CARDIOMEGALY] = box(an.heart_u, an.heart_v, heart_hx, heart_hy, size)
    return boxes, {"ctr": (2 * heart_hx / thorax).astype(np.float64)}
