"""Batched drawing primitives on a normalised coordinate grid, with a reusable buffer pool.

Coordinates: ``u`` (left to right) and ``v`` (top to bottom) span [-1, 1] across the image.
Per-study parameters are float arrays ``[n]``; images are float32 ``[n, S, S]``. Everything is
built from broadcasts of ``[n, 1, S]`` and ``[n, S, 1]`` factors, so a primitive costs a few
full-image passes, with no per-pixel or per-study Python loop.

Full-image buffers come from :class:`Canvas`, a pool reused for a whole generation call:
allocating each temporary afresh made glibc hand the memory back to the OS and fault it in
again on every operation, which cost more than the arithmetic (about 5x on a rotated ellipse).
Functions document which buffers they return (caller gives them back) or consume.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import prod

import numpy as np

F32 = np.float32
# A per-study parameter: an array [n] (one value per study) or a scalar shared by the batch.
Param = np.ndarray | float


@dataclass(frozen=True)
class Grid:
    """Pixel-centre coordinates for an ``size`` x ``size`` image.

    u: [1, 1, S]; v: [1, S, 1]; uv: [1, S, S] (their product, for rotated terms and biases).
    """

    size: int
    u: np.ndarray
    v: np.ndarray
    uv: np.ndarray

    @property
    def px(self) -> float:
        """Width of one pixel in normalised units."""
        return 2.0 / self.size


@lru_cache(maxsize=8)
def grid(size: int) -> Grid:
    c = ((np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0).astype(F32)
    return Grid(size, c[None, None, :], c[None, :, None], (c[:, None] * c[None, :])[None])


class Canvas:
    """A grid plus a pool of float32 scratch buffers holding up to ``capacity`` images each.

    ``take(n)`` (or ``take((shape))``) lends a contiguous buffer; ``give`` returns it. Buffers are
    sized for padded images (JPEG blocks) so any intermediate of the pipeline fits.
    """

    def __init__(self, size: int, capacity: int):
        g = grid(size)
        self.size, self.u, self.v, self.uv, self.px = g.size, g.u, g.v, g.uv, g.px
        self.capacity = capacity
        self._elements = capacity * (size + 8) ** 2
        self._free: list[np.ndarray] = []

    def take(self, shape: int | tuple[int, ...]) -> np.ndarray:
        """A float32 buffer of ``shape`` (an int n means ``[n, S, S]``), contents undefined."""
        if isinstance(shape, int):
            shape = (shape, self.size, self.size)
        count = prod(shape)
        if count > self._elements:
            raise ValueError(f"Canvas: buffer of shape {shape} exceeds the pool's capacity.")
        flat = self._free.pop() if self._free else np.empty(self._elements, dtype=F32)
        return flat[:count].reshape(shape)

    def give(self, *arrays: np.ndarray) -> None:
        """Return buffers obtained from :meth:`take` (others are ignored)."""
        for a in arrays:
            base = a.base if a.base is not None else a
            if base.ndim == 1 and base.size == self._elements and base.dtype == F32:
                self._free.append(base)

    def gather(self, source: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``source[rows]`` copied into a pool buffer."""
        out = self.take((len(rows), *source.shape[1:]))
        return np.take(source, rows, axis=0, out=out)

    def add_rows(self, target: np.ndarray, rows: np.ndarray, value: np.ndarray) -> None:
        """``target[rows] += value`` through a pool buffer; consumes ``value``."""
        sub = self.gather(target, rows)
        sub += value
        target[rows] = sub
        self.give(sub, value)


def col(x: Param) -> np.ndarray:
    """A per-study vector as a broadcastable float32 ``[n, 1, 1]`` column."""
    return np.asarray(x, dtype=F32).reshape(-1, 1, 1)


def _batch(*values: Param) -> int:
    return max(np.size(v) for v in values)


Window = tuple[slice, slice]


def window(
    c: Canvas, cx: Param, cy: Param, rx: Param, ry: Param, mirror: bool = False, mid: Param = 0.0
) -> Window:
    """Pixel (rows, columns) slices covering the ellipses of the whole batch plus 2 px.

    ``rx``, ``ry`` bound each ellipse's half extents; ``mirror`` as in :func:`quad`. Drawing a
    small structure only inside this window skips the pixels where its mask is zero anyway.
    """
    cx, cy, rx, ry, mid = (np.asarray(x, np.float64) for x in (cx, cy, rx, ry, mid))
    if mirror:
        lo_u, hi_u = np.min(mid - cx - rx), np.max(mid + cx + rx)
    else:
        lo_u, hi_u = np.min(cx - rx), np.max(cx + rx)
    lo_v, hi_v = np.min(cy - ry), np.max(cy + ry)

    def span(lo: float, hi: float) -> slice:
        start = int(np.floor((lo + 1.0) / c.px)) - 2
        stop = int(np.ceil((hi + 1.0) / c.px)) + 2
        return slice(min(max(start, 0), c.size), min(max(stop, 0), c.size))

    return span(lo_v, hi_v), span(lo_u, hi_u)


def quad(
    c: Canvas,
    cx: Param,
    cy: Param,
    ax: Param,
    ay: Param,
    angle: Param | None = None,
    mirror: bool = False,
    mid: Param = 0.0,
    win: Window | None = None,
) -> np.ndarray:
    """Normalised squared radius of an ellipse (1 on its boundary): pool buffer ``[n, S, S]``
    (or ``[n, h, w]`` over the window ``win``).

    ``angle`` (radians) turns the ``ax`` axis from +u towards +v (clockwise on screen).
    ``mirror`` draws the ellipse and its reflection about ``u = mid`` at once: ``cx`` is then the
    distance from that midline (paired organs).
    """
    n = _batch(cx, cy, ax, ay)
    u, v = (c.u, c.v) if win is None else (c.u[:, :, win[1]], c.v[:, win[0], :])
    cx, cy, ax, ay = col(cx), col(cy), col(ax), col(ay)
    # With |u| the field is symmetric in u, so the reflection also mirrors the rotation.
    du = (np.abs(u - col(mid)) if mirror else u) - cx
    dv = v - cy
    ia, ib = 1.0 / (ax * ax), 1.0 / (ay * ay)
    q = c.take((n, v.shape[1], u.shape[2]))
    if angle is None:
        return np.add(du * du * ia, dv * dv * ib, out=q)
    a = col(angle)
    cs, sn = np.cos(a), np.sin(a)
    np.add(du * du * (cs * cs * ia + sn * sn * ib), dv * dv * (sn * sn * ia + cs * cs * ib), out=q)
    tmp = np.multiply(2.0 * cs * sn * (ia - ib) * du, dv, out=c.take(q.shape))
    q += tmp
    c.give(tmp)
    return q


def soft(q: np.ndarray, sharpness: Param) -> np.ndarray:
    """Soft inside-mask of a quad, in place: 1 inside, 0 outside, ~1 px ramp at q = 1.

    ``sharpness`` (see :func:`sharpness`) sets the ramp width.
    """
    k = col(sharpness) if np.ndim(sharpness) else F32(sharpness)
    np.subtract(1.0, q, out=q)
    q *= k
    q += 0.5
    return np.clip(q, 0.0, 1.0, out=q)


def sharpness(c: Canvas, ax: Param, ay: Param) -> np.ndarray:
    """The :func:`soft` gain giving a ~1 px edge for semi-axes ``ax``, ``ay``."""
    return np.minimum(np.asarray(ax, F32), np.asarray(ay, F32)) / F32(2.0 * c.px)


def ellipse(
    c: Canvas,
    cx: Param,
    cy: Param,
    ax: Param,
    ay: Param,
    angle: Param | None = None,
    mirror: bool = False,
    mid: Param = 0.0,
    win: Window | None = None,
) -> np.ndarray:
    """Soft-edged filled ellipse mask in [0, 1]: pool buffer ``[n, S, S]`` (or over ``win``)."""
    return soft(quad(c, cx, cy, ax, ay, angle, mirror, mid, win), sharpness(c, ax, ay))


def ellipsoid(
    c: Canvas,
    cx: Param,
    cy: Param,
    ax: Param,
    ay: Param,
    angle: Param | None = None,
    mirror: bool = False,
    mid: Param = 0.0,
    win: Window | None = None,
) -> np.ndarray:
    """Projected thickness of an ellipsoid, sqrt(1 - q) in [0, 1]: pool buffer (as ``quad``)."""
    q = quad(c, cx, cy, ax, ay, angle, mirror, mid, win)
    np.subtract(1.0, q, out=q)
    np.clip(q, 0.0, np.inf, out=q)  # two finite bounds: faster than np.maximum with a scalar
    return np.sqrt(q, out=q)


def paint(c: Canvas, img: np.ndarray, mask: np.ndarray, value: Param, keep: bool = False) -> None:
    """Composite ``value`` over ``img`` with opacity ``mask``, in place.

    img = img (1 - m) + value m. Consumes ``mask`` (gives it back) unless ``keep``.
    """
    val = col(value) if np.ndim(value) else F32(value)
    inv = c.take(mask.shape) if keep else mask
    np.subtract(1.0, mask, out=inv)
    img -= val
    img *= inv
    img += val
    c.give(inv)


def paint_ellipse(
    c: Canvas,
    img: np.ndarray,
    value: Param,
    cx: Param,
    cy: Param,
    ax: Param,
    ay: Param,
    angle: Param | None = None,
    mirror: bool = False,
    mid: Param = 0.0,
    alpha: np.ndarray | None = None,
    opacity: float = 1.0,
) -> None:
    """Paint a filled ellipse of ``value`` into ``img`` [n, S, S], touching only its window.

    ``alpha`` (full-size [n, S, S], optional) and ``opacity`` scale the mask.
    """
    r = np.maximum(ax, ay)
    win = window(c, cx, cy, r, r, mirror, mid)
    mask = ellipse(c, cx, cy, ax, ay, angle, mirror, mid, win)
    if alpha is not None:
        mask *= alpha[:, win[0], win[1]]
    if opacity != 1.0:
        mask *= F32(opacity)
    paint(c, img[:, win[0], win[1]], mask, value)


def add_ellipsoid(
    c: Canvas,
    img: np.ndarray,
    amplitude: float,
    cx: Param,
    cy: Param,
    ax: Param,
    ay: Param,
    angle: Param | None = None,
    mirror: bool = False,
) -> None:
    """Add ``amplitude`` x the thickness of an ellipsoid to ``img`` [n, S, S], in its window."""
    r = np.maximum(ax, ay)
    win = window(c, cx, cy, r, r, mirror)
    t = ellipsoid(c, cx, cy, ax, ay, angle, mirror, 0.0, win)
    t *= F32(amplitude)
    img[:, win[0], win[1]] += t
    c.give(t)


@lru_cache(maxsize=16)
def upsample_matrix(size: int, nodes: int) -> tuple[np.ndarray, float]:
    """Gaussian-kernel interpolation ``[size, nodes]`` and the factor restoring unit variance.

    A low-resolution white field ``L [nodes, nodes]`` becomes a smooth field ``R L R^T`` of
    unit standard deviation; nodes sit slightly outside the image so borders are not special.
    """
    centres = np.linspace(-1.1, 1.1, nodes)
    x = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    sigma = (centres[1] - centres[0]) * 0.75
    w = np.exp(-0.5 * ((x[:, None] - centres[None, :]) / sigma) ** 2)
    w /= w.sum(axis=1, keepdims=True)
    per_axis = float(np.mean(np.sum(w**2, axis=1)))
    return w.astype(F32), 1.0 / per_axis


def smooth_field(c: Canvas, low: np.ndarray) -> np.ndarray:
    """Upsample white fields ``[n, g, g]`` to smooth unit-variance fields: pool buffer."""
    r, gain = upsample_matrix(c.size, low.shape[-1])
    out = np.matmul(np.matmul(r, low), r.T, out=c.take(len(low)))
    out *= F32(gain)
    return out


def box(cx: np.ndarray, cy: np.ndarray, hx: np.ndarray, hy: np.ndarray, size: int) -> np.ndarray:
    """Pixel boxes ``[n, 4]`` (x0, y0, x1, y1) of centred extents, clipped to the image."""
    scale = size / 2.0
    x0 = np.clip((cx - hx + 1.0) * scale, 0, size)
    x1 = np.clip((cx + hx + 1.0) * scale, 0, size)
    y0 = np.clip((cy - hy + 1.0) * scale, 0, size)
    y1 = np.clip((cy + hy + 1.0) * scale, 0, size)
    return np.stack([x0, y0, x1, y1], axis=-1)


def union_box(u: np.ndarray, v: np.ndarray, r: np.ndarray, size: int) -> np.ndarray:
    """Pixel box ``[n, 4]`` around all discs (u, v, r ``[n, k]``) with r > 0 (zeros if none)."""
    present = r > 0
    found = present.any(axis=1)
    edges = [
        np.where(present, u - r, np.inf).min(axis=1),
        np.where(present, v - r, np.inf).min(axis=1),
        np.where(present, u + r, -np.inf).max(axis=1),
        np.where(present, v + r, -np.inf).max(axis=1),
    ]
    return np.stack(
        [np.clip((np.where(found, e, -1.0) + 1.0) * size / 2.0, 0, size) for e in edges], axis=-1
    )


def rotated_extent(ax: Param, ay: Param, angle: Param) -> tuple[np.ndarray, np.ndarray]:
    """Half-width and half-height of a rotated ellipse's bounding box."""
    c, s = np.cos(angle), np.sin(angle)
    return np.sqrt((ax * c) ** 2 + (ay * s) ** 2), np.sqrt((ax * s) ** 2 + (ay * c) ** 2)
