"""Abdomen CT- or MR-like axial slices at the level of the kidneys.

The same geometry is painted with CT-like (post-contrast) or T2-weighted MR-like grey levels:
on MR, fluid and fat are bright, flowing blood and stones dark, so findings look different
per modality but stay visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robust_mmr_pipeline.sources.synthrad.catalog import FINDING_INDEX, MRI
from robust_mmr_pipeline.sources.synthrad.plan import StudyPlan, lesion_radius
from robust_mmr_pipeline.sources.synthrad.primitives import (
    F32,
    Canvas,
    box,
    col,
    ellipse,
    paint,
    paint_ellipse,
    union_box,
)

LIVER_LESION = FINDING_INDEX["liver_lesion"]
KIDNEY_STONE = FINDING_INDEX["kidney_stone"]
ASCITES = FINDING_INDEX["ascites"]
ASCITES_DEPTH = (0.05, 0.09, 0.14)  # fluid rim thickness by size
WALL = 0.045  # abdominal wall muscle thickness

# Grey levels (CT, MR T2-like).
TISSUE: dict[str, tuple[float, float]] = {
    "fat": (0.22, 0.78),
    "muscle": (0.52, 0.28),
    "visceral": (0.26, 0.72),
    "bowel": (0.48, 0.42),
    "gas": (0.02, 0.02),
    "liver": (0.62, 0.33),
    "spleen": (0.57, 0.5),
    "kidney": (0.78, 0.56),
    "sinus": (0.3, 0.85),
    "bone": (0.95, 0.45),
    "csf": (0.4, 0.95),
    "aorta": (0.86, 0.05),
    "ivc": (0.7, 0.08),
    "lesion": (0.4, 0.88),
    "stone": (1.0, 0.02),
    "fluid": (0.42, 0.95),
}


def _span(a: np.ndarray, k: int, lo: float, hi: float) -> np.ndarray:
    return (lo + (hi - lo) * a[:, k]).astype(F32)


@dataclass
class AbdomenAnatomy:
    """Per-study geometry (float32 [n]); liver lobes [n, 2] with 0 = right lobe, 1 = left lobe."""

    body_v: np.ndarray
    body_ax: np.ndarray
    body_ay: np.ndarray
    fat: np.ndarray
    bowel_v: np.ndarray
    lobe_u: np.ndarray
    lobe_v: np.ndarray
    lobe_ax: np.ndarray
    lobe_ay: np.ndarray
    lobe_angle: np.ndarray
    spleen: tuple[np.ndarray, ...]
    kidney_off: np.ndarray
    kidney_v: np.ndarray
    kidney_ax: np.ndarray
    kidney_ay: np.ndarray
    kidney_angle: np.ndarray
    vert_v: np.ndarray
    vert_r: np.ndarray
    aorta_u: np.ndarray
    aorta_r: np.ndarray
    ivc_u: np.ndarray
    mr: np.ndarray
    jitter: np.ndarray

    @property
    def cavity_ax(self) -> np.ndarray:
        return self.body_ax - self.fat - WALL

    @property
    def cavity_ay(self) -> np.ndarray:
        return self.body_ay - self.fat - WALL

    def value(self, tissue: str) -> np.ndarray:
        """Grey level of ``tissue`` per study (modality-dependent): float32 [n]."""
        ct, mr = TISSUE[tissue]
        out = np.where(self.mr, F32(mr), F32(ct))
        if tissue in ("liver", "spleen", "kidney"):
            out = out + self.jitter  # contrast phase / coil sensitivity varies per study
        return out.astype(F32)


def anatomy(p: StudyPlan) -> AbdomenAnatomy:
    a = p.anatomy
    s = _span
    return AbdomenAnatomy(
        body_v=s(a, 0, 0.0, 0.08),
        body_ax=s(a, 1, 0.82, 0.95),
        body_ay=s(a, 2, 0.58, 0.7),
        fat=s(a, 3, 0.05, 0.12),
        bowel_v=s(a, 4, -0.2, -0.05),
        lobe_u=np.stack([s(a, 5, -0.36, -0.28), s(a, 10, -0.02, 0.08)], axis=1),
        lobe_v=np.stack([s(a, 6, -0.12, 0.0), s(a, 11, -0.3, -0.22)], axis=1),
        lobe_ax=np.stack([s(a, 7, 0.28, 0.34), s(a, 12, 0.18, 0.25)], axis=1),
        lobe_ay=np.stack([s(a, 8, 0.3, 0.38), s(a, 13, 0.1, 0.14)], axis=1),
        lobe_angle=np.stack([s(a, 9, -0.3, 0.0), s(a, 14, 0.15, 0.4)], axis=1),
        spleen=(
            s(a, 15, 0.48, 0.56),
            s(a, 16, 0.0, 0.12),
            s(a, 17, 0.09, 0.13),
            s(a, 18, 0.15, 0.21),
            s(a, 19, -0.5, -0.2),
        ),
        kidney_off=s(a, 20, 0.25, 0.3),
        kidney_v=s(a, 21, 0.26, 0.33),
        kidney_ax=s(a, 22, 0.08, 0.1),
        kidney_ay=s(a, 23, 0.12, 0.15),
        kidney_angle=s(a, 24, 0.25, 0.5),
        vert_v=s(a, 25, 0.36, 0.42),
        vert_r=s(a, 26, 0.085, 0.105),
        aorta_u=s(a, 27, 0.0, 0.05),
        aorta_r=s(a, 28, 0.03, 0.04),
        ivc_u=s(a, 29, -0.13, -0.08),
        mr=p.modality == MRI,
        jitter=s(a, 30, -0.03, 0.03),
    )


def liver_lesions(p: StudyPlan, an: AbdomenAnatomy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Liver lesion centres u, v and radii: float32 [n, 3] (radius 0 where absent)."""
    rows = np.arange(len(p))
    lobe = np.clip(p.region[:, LIVER_LESION], 0, 1)
    pos = p.pos[:, LIVER_LESION]
    theta, rho = 2 * np.pi * pos[..., 0], 0.55 * np.sqrt(pos[..., 1])
    u = an.lobe_u[rows, lobe][:, None] + rho * an.lobe_ax[rows, lobe][:, None] * np.cos(theta)
    v = an.lobe_v[rows, lobe][:, None] + rho * an.lobe_ay[rows, lobe][:, None] * np.sin(theta)
    return u.astype(F32), v.astype(F32), lesion_radius(p, LIVER_LESION)


def kidney_stones(
    p: StudyPlan, an: AbdomenAnatomy, px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stone centres u, v and radii (at least ~0.6 px): float32 [n, 3]."""
    side = np.where(p.side[:, KIDNEY_STONE] == 1, 1.0, -1.0)[:, None]
    pos = p.pos[:, KIDNEY_STONE]
    theta, rho = 2 * np.pi * pos[..., 0], 0.3 * np.sqrt(pos[..., 1])
    # Stones sit in the collecting system, on the medial side of the kidney.
    u = side * (
        an.kidney_off[:, None]
        - 0.25 * an.kidney_ax[:, None]
        + rho * an.kidney_ax[:, None] * np.cos(theta)
    )
    v = an.kidney_v[:, None] + rho * an.kidney_ay[:, None] * np.sin(theta)
    r = lesion_radius(p, KIDNEY_STONE)
    r = np.where(r > 0, np.maximum(r, 0.6 * px), 0.0)
    return u.astype(F32), v.astype(F32), r.astype(F32)


def render(
    c: Canvas, p: StudyPlan, coarse: np.ndarray, fine: np.ndarray, with_findings: bool = True
) -> np.ndarray:
    """Render ``p`` (all abdomen studies) into a pool buffer: float32 ``[n, S, S]`` in [0, 1].

    coarse, fine: smooth unit-variance random fields ``[n, S, S]`` (read only).
    """
    an = anatomy(p)
    n = len(p)
    zeros = np.zeros(n, F32)

    def const(x: float) -> np.ndarray:
        return np.full(n, x, F32)

    body = ellipse(c, zeros, an.body_v, an.body_ax, an.body_ay)
    img = np.multiply(body, col(an.value("fat")), out=c.take(n))
    paint(
        c,
        img,
        ellipse(c, zeros, an.body_v, an.body_ax - an.fat, an.body_ay - an.fat),
        an.value("muscle"),
    )
    cavity = ellipse(c, zeros, an.body_v, an.cavity_ax, an.cavity_ay)
    paint(c, img, cavity, an.value("visceral"), keep=True)

    # Bowel loops: soft-tissue mass with gas pockets where the random fields peak.
    bowel = ellipse(c, const(0.05), an.bowel_v, const(0.5), const(0.34))
    bowel *= cavity
    paint(c, img, np.multiply(bowel, 0.85, out=c.take(n)), an.value("bowel"))
    gas = np.subtract(coarse, 0.8, out=c.take(n))
    gas *= 2.5
    np.clip(gas, 0.0, 1.0, out=gas)
    more = np.subtract(fine, 1.2, out=c.take(n))
    more *= 2.5
    np.clip(more, 0.0, 1.0, out=more)
    gas += more
    np.clip(gas, 0.0, 1.0, out=gas)
    gas *= bowel
    paint(c, img, gas, an.value("gas"))
    wall = np.multiply(fine, 0.03, out=more)
    wall *= bowel
    img += wall
    c.give(wall, bowel)

    liver = ellipse(
        c, an.lobe_u[:, 0], an.lobe_v[:, 0], an.lobe_ax[:, 0], an.lobe_ay[:, 0], an.lobe_angle[:, 0]
    )
    left = ellipse(
        c, an.lobe_u[:, 1], an.lobe_v[:, 1], an.lobe_ax[:, 1], an.lobe_ay[:, 1], an.lobe_angle[:, 1]
    )
    np.maximum(liver, left, out=liver)
    c.give(left)
    liver *= cavity
    paint(c, img, liver, an.value("liver"), keep=True)
    paint_ellipse(c, img, an.value("spleen"), *an.spleen, alpha=cavity)
    if with_findings:
        _ascites(c, p, an, img, cavity)

    # Small structures are painted inside their own windows only.
    paint_ellipse(
        c,
        img,
        an.value("kidney"),
        an.kidney_off,
        an.kidney_v,
        an.kidney_ax,
        an.kidney_ay,
        an.kidney_angle,
        mirror=True,
    )
    paint_ellipse(
        c,
        img,
        an.value("sinus"),
        an.kidney_off - 0.3 * an.kidney_ax,
        an.kidney_v,
        0.45 * an.kidney_ax,
        0.45 * an.kidney_ay,
        an.kidney_angle,
        mirror=True,
    )
    muscle, bone = an.value("muscle"), an.value("bone")
    paint_ellipse(
        c, img, muscle, const(0.12), an.vert_v - 0.02, const(0.05), const(0.07), mirror=True
    )
    paint_ellipse(
        c,
        img,
        muscle,
        const(0.13),
        an.vert_v + an.vert_r + 0.1,
        const(0.1),
        const(0.07),
        mirror=True,
    )
    paint_ellipse(c, img, bone, zeros, an.vert_v, an.vert_r, 0.9 * an.vert_r)
    paint_ellipse(
        c, img, an.value("csf"), zeros, an.vert_v + an.vert_r + 0.04, const(0.035), const(0.03)
    )
    paint_ellipse(c, img, bone, zeros, an.vert_v + an.vert_r + 0.12, const(0.025), const(0.05))
    paint_ellipse(
        c, img, an.value("aorta"), an.aorta_u, an.vert_v - an.vert_r - 0.05, an.aorta_r, an.aorta_r
    )
    paint_ellipse(
        c, img, an.value("ivc"), an.ivc_u, an.vert_v - an.vert_r - 0.06, const(0.045), const(0.03)
    )
    if with_findings:
        _lesions(c, p, an, img, liver)
    texture = np.multiply(fine, 0.015, out=c.take(n))
    texture *= body
    img += texture
    c.give(texture, body, cavity, liver)
    return img


def _ascites(
    c: Canvas, p: StudyPlan, an: AbdomenAnatomy, img: np.ndarray, cavity: np.ndarray
) -> None:
    rows = np.flatnonzero(p.has[:, ASCITES])
    if not len(rows):
        return
    depth = np.asarray(ASCITES_DEPTH, F32)[np.clip(p.size[rows, ASCITES], 0, 2)]
    # Fluid collects anteriorly and laterally: the inner boundary is shifted posteriorly.
    inner = ellipse(
        c,
        np.zeros(len(rows), F32),
        an.body_v[rows] + 0.6 * depth,
        an.cavity_ax[rows] - depth,
        an.cavity_ay[rows] - depth,
    )
    fluid = np.subtract(1.0, inner, out=inner)
    inside = c.gather(cavity, rows)
    fluid *= inside
    c.give(inside)
    perihepatic = np.flatnonzero(p.region[rows, ASCITES] == 0)
    if len(perihepatic):
        # Confined to the patient's right upper quadrant (image upper left).
        quadrant = np.clip((-0.05 - c.u) / F32(4 * c.px) + 0.5, 0.0, 1.0) * np.clip(
            (0.2 - c.v) / F32(4 * c.px) + 0.5, 0.0, 1.0
        )
        part = c.gather(fluid, perihepatic)
        part *= quadrant
        fluid[perihepatic] = part
        c.give(part)
    sub = c.gather(img, rows)
    paint(c, sub, fluid, an.value("fluid")[rows])
    img[rows] = sub
    c.give(sub)


def _lesions(
    c: Canvas, p: StudyPlan, an: AbdomenAnatomy, img: np.ndarray, liver: np.ndarray
) -> None:
    u, v, r = liver_lesions(p, an)
    aspect = 0.8 + 0.4 * p.shape[:, LIVER_LESION].astype(F32)
    lesion_val = an.value("lesion")
    for k in range(r.shape[1]):
        rows = np.flatnonzero(p.has[:, LIVER_LESION] & (p.count[:, LIVER_LESION] > k))
        if len(rows):
            sub, inside = c.gather(img, rows), c.gather(liver, rows)
            # Lesions are confined to the liver.
            paint_ellipse(
                c,
                sub,
                lesion_val[rows],
                u[rows, k],
                v[rows, k],
                r[rows, k],
                r[rows, k] * aspect[rows, k],
                alpha=inside,
            )
            img[rows] = sub
            c.give(sub, inside)
    u, v, r = kidney_stones(p, an, c.px)
    stone_val = an.value("stone")
    for k in range(r.shape[1]):
        rows = np.flatnonzero(p.has[:, KIDNEY_STONE] & (p.count[:, KIDNEY_STONE] > k))
        if len(rows):
            sub = c.gather(img, rows)
            paint_ellipse(c, sub, stone_val[rows], u[rows, k], v[rows, k], r[rows, k], r[rows, k])
            img[rows] = sub
            c.give(sub)


def annotate(p: StudyPlan, size: int) -> tuple[dict[int, np.ndarray], dict[str, np.ndarray]]:
    """Finding boxes (pixels, [n, 4] per finding index); no measurements for this family."""
    an = anatomy(p)
    boxes = {}
    boxes[LIVER_LESION] = union_box(*liver_lesions(p, an), size)
    boxes[KIDNEY_STONE] = union_box(*kidney_stones(p, an, 2.0 / size), size)
    cav = box(np.zeros(len(p)), an.body_v, an.cavity_ax, an.cavity_ay, size)
    peri = cav.copy()
    peri[:, 2] = np.minimum(peri[:, 2], (1.0 - 0.05) * size / 2)
    peri[:, 3] = np.minimum(peri[:, 3], (1.0 + 0.2) * size / 2)
    boxes[ASCITES] = np.where((p.region[:, ASCITES] == 0)[:, None], peri, cav)
    return boxes, {}
