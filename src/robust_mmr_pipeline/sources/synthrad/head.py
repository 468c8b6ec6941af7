"""Head CT-like axial slices at the level of the lateral ventricles (brain window).

Tissues are painted back to front with CT-like grey levels: scalp, skull, grey matter, white
matter with an irregular (gyral) border, sulci, ventricles and falx, then the findings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robust_mmr_pipeline.sources.synthrad.catalog import FINDING_INDEX
from robust_mmr_pipeline.sources.synthrad.plan import StudyPlan, lesion_radius
from robust_mmr_pipeline.sources.synthrad.primitives import (
    F32,
    Canvas,
    box,
    col,
    ellipse,
    paint,
    paint_ellipse,
    quad,
    rotated_extent,
    sharpness,
    soft,
    window,
)

HAEMORRHAGE = FINDING_INDEX["haemorrhage"]
INFARCT = FINDING_INDEX["infarct"]
# Angular sectors (degrees from the anterior midline) of the lobe regions on this slice.
SECTORS = ((15.0, 55.0), (65.0, 105.0), (110.0, 140.0), (150.0, 172.0))
BONE = 1.0


def _span(a: np.ndarray, k: int, lo: float, hi: float) -> np.ndarray:
    return (lo + (hi - lo) * a[:, k]).astype(F32)


@dataclass
class HeadAnatomy:
    """Per-study geometry and grey levels (float32 [n])."""

    cx: np.ndarray
    cy: np.ndarray
    ax: np.ndarray
    ay: np.ndarray
    angle: np.ndarray
    scalp: np.ndarray
    skull: np.ndarray
    vent_off: np.ndarray
    vent_v: np.ndarray
    vent_ax: np.ndarray
    vent_ay: np.ndarray
    vent_angle: np.ndarray
    wm_scale: np.ndarray
    grey: np.ndarray
    white: np.ndarray
    csf: np.ndarray
    blood: np.ndarray

    @property
    def brain_ax(self) -> np.ndarray:
        return self.ax - self.scalp - self.skull

    @property
    def brain_ay(self) -> np.ndarray:
        return self.ay - self.scalp - self.skull


def anatomy(p: StudyPlan) -> HeadAnatomy:
    a = p.anatomy
    grey = _span(a, 13, 0.49, 0.53)
    return HeadAnatomy(
        cx=_span(a, 0, -0.03, 0.03),
        cy=_span(a, 1, -0.02, 0.05),
        ax=_span(a, 2, 0.66, 0.76),
        ay=_span(a, 3, 0.8, 0.9),
        angle=_span(a, 4, -0.08, 0.08),
        scalp=_span(a, 5, 0.025, 0.04),
        skull=_span(a, 6, 0.045, 0.07),
        vent_off=_span(a, 7, 0.055, 0.085),
        vent_v=_span(a, 8, -0.14, -0.04),
        vent_ax=_span(a, 9, 0.03, 0.055),
        vent_ay=_span(a, 10, 0.14, 0.22),
        vent_angle=_span(a, 11, 0.15, 0.4),
        wm_scale=_span(a, 12, 0.74, 0.82),
        grey=grey,
        white=grey - _span(a, 14, 0.05, 0.08),
        csf=_span(a, 15, 0.16, 0.22),
        blood=_span(a, 16, 0.76, 0.84),
    )


def lesion(p: StudyPlan, an: HeadAnatomy, finding: int) -> tuple[np.ndarray, ...]:
    """Centre u, v, semi-axes a, b and angle of the head lesion ``finding``: float32 [n] each."""
    side = np.where(p.side[:, finding] == 1, 1.0, -1.0)  # left hemisphere is on the image right
    sector = np.radians(np.asarray(SECTORS)[np.clip(p.region[:, finding], 0, 3)])
    pos, shape = p.pos[:, finding, 0], p.shape[:, finding]
    phi = sector[:, 0] + (sector[:, 1] - sector[:, 0]) * pos[:, 0]
    du, dv = side * np.sin(phi), -np.cos(phi)
    reach = 1.0 / np.sqrt((du / an.brain_ax) ** 2 + (dv / an.brain_ay) ** 2)
    a = lesion_radius(p, finding)[:, 0].astype(np.float64)
    if finding == INFARCT:
        # A wedge-like territory reaching the cortex, elongated along the radius.
        b = a * (0.5 + 0.15 * shape[:, 0])
        dist = np.maximum(0.93 * reach - a, 0.2 * reach)
        angle = np.arctan2(dv, du)
    else:
        b = a * (0.7 + 0.3 * shape[:, 0])
        dist = np.minimum((0.3 + 0.35 * pos[:, 1]) * reach, 0.88 * reach - a)
        angle = 2 * np.pi * shape[:, 1]
    u, v = an.cx + dist * du, an.cy + dist * dv
    return tuple(x.astype(F32) for x in (u, v, a, b, angle))


def render(
    c: Canvas, p: StudyPlan, coarse: np.ndarray, fine: np.ndarray, with_findings: bool = True
) -> np.ndarray:
    """Render ``p`` (all head studies) into a pool buffer: float32 ``[n, S, S]`` in [0, 1].

    coarse, fine: smooth unit-variance random fields ``[n, S, S]`` (read only).
    """
    n = len(p)
    an = anatomy(p)
    img = ellipse(c, an.cx, an.cy, an.ax, an.ay, an.angle)
    img *= 0.4
    paint(c, img, ellipse(c, an.cx, an.cy, an.ax - an.scalp, an.ay - an.scalp, an.angle), BONE)
    qb = quad(c, an.cx, an.cy, an.brain_ax, an.brain_ay, an.angle)
    brain = c.take(n)
    np.copyto(brain, qb)
    soft(brain, sharpness(c, an.brain_ax, an.brain_ay))
    paint(c, img, brain, an.grey, keep=True)

    # White matter with a gyral (noisy) border.
    wm_ax, wm_ay = an.wm_scale * an.brain_ax, an.wm_scale * an.brain_ay
    qw = quad(c, an.cx, an.cy, wm_ax, wm_ay, an.angle)
    tmp = np.multiply(coarse, 0.12, out=c.take(n))
    qw += tmp
    np.multiply(fine, 0.06, out=tmp)
    qw += tmp
    paint(c, img, soft(qw, sharpness(c, wm_ax, wm_ay)), an.white)

    # Sulci: thin CSF clefts along the zero set of the fine field, in the brain's outer rim.
    rim = qb
    rim -= 0.55
    rim *= 3.0
    np.clip(rim, 0.0, 1.0, out=rim)
    sulci = np.abs(fine, out=tmp)
    sulci *= -5.0
    sulci += 1.0
    np.clip(sulci, 0.0, 1.0, out=sulci)
    sulci *= rim
    sulci *= brain
    sulci *= 0.7
    paint(c, img, sulci, an.csf)
    c.give(rim)

    paint_ellipse(
        c,
        img,
        an.csf,
        an.vent_off,
        an.cy + an.vent_v,
        an.vent_ax,
        an.vent_ay,
        an.vent_angle,
        mirror=True,
        mid=an.cx,
    )
    # Falx: a thin bright midline line in front of and behind the ventricles.
    prof = np.clip(1.0 - np.abs(c.u - col(an.cx)) / F32(0.8 * c.px), 0.0, 1.0)
    gap = np.clip((np.abs(c.v - col(an.cy)) - col(0.3 * an.brain_ay)) / F32(c.px), 0.0, 1.0)
    falx = np.multiply(prof, gap, out=c.take(n))
    falx *= brain
    falx *= 0.6
    paint(c, img, falx, 0.65)

    texture = np.multiply(fine, 0.012, out=c.take(n))
    texture *= brain
    img += texture
    c.give(texture)
    if with_findings:
        _lesions(c, p, an, img, brain, coarse)
    c.give(brain)
    return img


def _lesions(
    c: Canvas, p: StudyPlan, an: HeadAnatomy, img: np.ndarray, brain: np.ndarray, coarse: np.ndarray
) -> None:
    for finding in (HAEMORRHAGE, INFARCT):
        rows = np.flatnonzero(p.has[:, finding])
        if not len(rows):
            continue
        u, v, a, b, angle = (x[rows] for x in lesion(p, an, finding))
        sub, inside = c.gather(img, rows), c.gather(brain, rows)
        white = an.white[rows]
        if finding == HAEMORRHAGE:
            # Hypodense oedema halo, then the hyperdense clot with an irregular edge.
            paint_ellipse(
                c, sub, white - 0.08, u, v, 1.5 * a, 1.5 * b, angle, alpha=inside, opacity=0.5
            )
        # The random-field roughening can push the edge out by ~20 %: widen the window.
        r = 1.3 * np.maximum(a, b)
        ys, xs = window(c, u, v, r, r)
        q = quad(c, u, v, a, b, angle, win=(ys, xs))
        rough = c.gather(coarse, rows)[:, ys, xs]
        rough *= 0.15 if finding == HAEMORRHAGE else 0.1
        q += rough
        c.give(rough)
        mask = soft(q, sharpness(c, a, b))
        mask *= inside[:, ys, xs]
        if finding == HAEMORRHAGE:
            paint(c, sub[:, ys, xs], mask, an.blood[rows])
        else:
            mask *= 0.9
            paint(c, sub[:, ys, xs], mask, white - 0.11)
        img[rows] = sub
        c.give(sub, inside)


def annotate(p: StudyPlan, size: int) -> tuple[dict[int, np.ndarray], dict[str, np.ndarray]]:
    """Finding boxes (pixels, [n, 4] per finding index); no measurements for this family."""
    an = anatomy(p)
    boxes = {}
    for finding in (HAEMORRHAGE, INFARCT):
        u, v, a, b, angle = lesion(p, an, finding)
        grow = 1.5 if finding == HAEMORRHAGE else 1.0
        hx, hy = rotated_extent(grow * a, grow * b, angle)
        boxes[finding] = box(u, v, hx, hy, size)
    return boxes, {}
