"""Site signatures: how one acquisition site turns rendered anatomy into stored 8-bit pixels.

Order follows the physics: bias field (coil / heel effect) and motion ghosting on the object,
then the point-spread function and detector resolution (a separable blur by shifted slices, or
blur-and-resample matrices when the site acquires at a lower resolution), noise at the
acquisition resolution, resampling to the output size, device artefacts, the display window and
gamma, burned-in markers, and finally JPEG-like block-DCT compression.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from robust_mmr_pipeline.seeding import name_seed
from robust_mmr_pipeline.sources.synthrad.catalog import MODALITIES
from robust_mmr_pipeline.sources.synthrad.config import ARTEFACTS, SiteConfig
from robust_mmr_pipeline.sources.synthrad.primitives import F32, Canvas, col
from robust_mmr_pipeline.sources.synthrad.rng import white_noise

# IJG standard luminance quantisation table, flattened row-major to match the DCT blocks.
_JPEG_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float64,
).reshape(64)
_GLYPHS = {
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
}
GRID_PERIOD_PX = 2.7  # anti-scatter grid line period, close to Nyquist so it aliases visibly


@dataclass(frozen=True)
class SiteKernel:
    """Precomputed operators of one site at one image size.

    taps: symmetric Gaussian half-kernel [r + 1] when the site keeps full resolution and the
    blur is short (applied with shifted slices, ~3x cheaper than two dense products), else None;
    down: [h, S] blur then area-downsample (None with taps); up: [S, h] bilinear upsample
    (None when h == S);
    grid: [1, 1, S]; ring, streaks: [S, S]; bias: [4] fixed bias direction; jpeg: [64] or None;
    marker: (row, col, glyph [gh, gw] float32) or None.
    """

    taps: np.ndarray | None
    down: np.ndarray | None
    up: np.ndarray | None
    grid: np.ndarray
    ring: np.ndarray
    streaks: np.ndarray
    bias: np.ndarray
    jpeg: np.ndarray | None
    marker: tuple[int, int, np.ndarray] | None


def gaussian_taps(sigma: float, max_radius: int = 8) -> np.ndarray | None:
    """Normalised symmetric half-kernel [w0, w1, ..., wr] (taps below 1e-3 of w0 dropped), or
    None when the kernel would be wider than ``max_radius``."""
    if sigma <= 1e-3:
        return np.ones(1, dtype=F32)
    k = np.arange(math.ceil(3 * sigma) + 1)
    w = np.exp(-0.5 * (k / sigma) ** 2)
    w = w[w >= 1e-3 * w[0]]
    if len(w) - 1 > max_radius:
        return None
    return (w / (w[0] + 2 * w[1:].sum())).astype(F32)


def blur_separable(c: Canvas, x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable symmetric blur of pool buffer ``x`` [m, S, S] with half-sample symmetric
    borders, by shifted slices. Consumes ``x``; returns a pool buffer."""
    r = len(taps) - 1
    if r == 0:
        return x
    m, size, _ = x.shape
    for axis in (1, 2):
        shape = (m, size + 2 * r, size) if axis == 1 else (m, size, size + 2 * r)
        padded = c.take(shape)

        def cut(a: np.ndarray, start: int, stop: int, axis: int = axis) -> np.ndarray:
            return a[:, start:stop] if axis == 1 else a[:, :, start:stop]

        cut(padded, r, r + size)[...] = x
        cut(padded, 0, r)[...] = np.flip(cut(x, 0, r), axis=axis)
        cut(padded, r + size, size + 2 * r)[...] = np.flip(cut(x, size - r, size), axis=axis)
        out = np.multiply(cut(padded, r, r + size), taps[0], out=x)
        pair = c.take(x.shape)
        for k in range(1, r + 1):
            np.add(cut(padded, r - k, r - k + size), cut(padded, r + k, r + k + size), out=pair)
            pair *= taps[k]
            out += pair
        c.give(pair, padded)
        x = out
    return x


def blur_matrix(size: int, sigma: float) -> np.ndarray:
    """Gaussian blur as a ``[S, S]`` matrix with half-sample symmetric borders."""
    if sigma <= 1e-3:
        return np.eye(size)
    radius = max(1, math.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    rows = np.arange(size)
    out = np.zeros((size, size))
    for off, w in zip(offsets, weights, strict=True):
        j = rows + off
        j = np.where(j < 0, -j - 1, j)
        j = np.where(j >= size, 2 * size - j - 1, j)
        np.add.at(out, (rows, np.clip(j, 0, size - 1)), w)
    return out


def area_matrix(size: int, low: int) -> np.ndarray:
    """Area-averaging downsample ``[low, S]``."""
    edges = np.linspace(0.0, size, low + 1)
    j = np.arange(size)
    overlap = np.minimum(j[None, :] + 1, edges[1:, None]) - np.maximum(j[None, :], edges[:-1, None])
    out = np.clip(overlap, 0.0, None)
    return out / out.sum(axis=1, keepdims=True)


def bilinear_matrix(size: int, low: int) -> np.ndarray:
    """Bilinear (half-pixel centred) upsample ``[S, low]``."""
    src = np.clip((np.arange(size) + 0.5) * low / size - 0.5, 0.0, low - 1)
    i0 = np.floor(src).astype(int)
    frac = src - i0
    out = np.zeros((size, low))
    rows = np.arange(size)
    np.add.at(out, (rows, i0), 1.0 - frac)
    np.add.at(out, (rows, np.minimum(i0 + 1, low - 1)), frac)
    return out


def jpeg_table(quality: int) -> np.ndarray:
    """IJG quantisation table for ``quality`` (1-100): float32 [64]."""
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return np.clip(np.floor((_JPEG_LUMA * scale + 50.0) / 100.0), 1, 255).astype(F32)


@lru_cache(maxsize=1)
def dct_kron() -> np.ndarray:
    """Orthonormal 8x8 2-D DCT-II acting on row-major flattened blocks: float32 [64, 64]."""
    k = np.arange(8)
    d = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 16.0) * np.sqrt(2.0 / 8.0)
    d[0] /= np.sqrt(2.0)
    return np.kron(d, d).astype(F32)


def jpeg_like(c: Canvas, img: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Block-DCT quantisation of pool buffer ``img`` float32 [m, S, S] on the 0-255 scale.

    Consumes ``img``; returns a pool buffer. Images whose size is not a multiple of 8 are
    edge-padded like a JPEG encoder does, then cropped back.
    """
    m, size, _ = img.shape
    padded = -(-size // 8) * 8
    if padded != size:
        big = c.take((m, padded, padded))
        big[:, :size, :size] = img
        big[:, size:, :size] = img[:, size - 1 : size, :]
        big[:, :, size:] = big[:, :, size - 1 : size]
        c.give(img)
        img = big
    nb = padded // 8
    blocks = c.take((m * nb * nb, 64))
    np.copyto(
        blocks.reshape(m, nb, nb, 8, 8), img.reshape(m, nb, 8, nb, 8).transpose(0, 1, 3, 2, 4)
    )
    blocks -= 128.0
    kron = dct_kron()
    coef = np.matmul(blocks, kron.T, out=c.take((m * nb * nb, 64)))
    coef /= table
    np.rint(coef, out=coef)
    coef *= table
    np.matmul(coef, kron, out=blocks)
    blocks += 128.0
    c.give(coef)
    np.copyto(
        img.reshape(m, nb, 8, nb, 8), blocks.reshape(m, nb, nb, 8, 8).transpose(0, 1, 3, 2, 4)
    )
    c.give(blocks)
    if padded != size:
        out = c.take(m)
        np.copyto(out, img[:, :size, :size])
        c.give(img)
        img = out
    return img


def _site_rng(site: SiteConfig) -> np.random.Generator:
    # Keyed by the name, so a site's fixed patterns do not depend on its position in the list.
    return np.random.default_rng(name_seed(site.name))


@lru_cache(maxsize=64)
def _kernel(key: tuple, size: int) -> SiteKernel:
    site = SiteConfig(*key)
    rng = _site_rng(site)
    low = max(8, round(size * site.resolution_scale))
    sigma = site.blur_sigma * size / 128.0
    taps = gaussian_taps(sigma) if low == size else None
    down = None
    if taps is None:
        blur = blur_matrix(size, sigma)
        down = blur if low == size else area_matrix(size, low) @ blur
    up = None if low == size else bilinear_matrix(size, low)

    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    u, v = c[None, :], c[:, None]
    px = 2.0 / size
    grid = 0.5 + 0.5 * np.cos(2 * np.pi * np.arange(size) / GRID_PERIOD_PX)
    r = np.sqrt(u * u + v * v)
    radii = rng.uniform(0.15, 0.85, size=4)
    signs = rng.choice([-1.0, 1.0], size=4)
    ring = sum(
        s * np.exp(-(((r - rad) / (0.7 * px)) ** 2)) for rad, s in zip(radii, signs, strict=True)
    )
    sx, sy = rng.uniform(-0.25, 0.25, size=2)
    theta = np.arctan2(v - sy, u - sx)
    dist = np.sqrt((u - sx) ** 2 + (v - sy) ** 2)
    spokes = np.cos(int(rng.integers(5, 10)) * theta + rng.uniform(0, 2 * np.pi)) ** 3
    streaks = np.sign(spokes) * np.abs(spokes) ** 4 * np.exp(-dist / 0.9)
    bias = rng.uniform(-1.0, 1.0, size=4)

    marker = None
    if "marker" in site.artefacts:
        cell = max(1, round(size / 128))
        glyph = np.array(
            [[ch == "1" for ch in row] for row in _GLYPHS[rng.choice(["L", "R"])]], dtype=F32
        )
        glyph = np.kron(glyph, np.ones((cell, cell), dtype=F32))
        margin = max(2, round(4 * size / 128))
        corner = int(rng.integers(4))
        row = margin if corner < 2 else size - margin - glyph.shape[0]
        column = margin if corner % 2 == 0 else size - margin - glyph.shape[1]
        marker = (row, column, glyph)
    return SiteKernel(
        taps=taps,
        down=None if down is None else down.astype(F32),
        up=None if up is None else up.astype(F32),
        grid=grid.astype(F32)[None, None, :],
        ring=ring.astype(F32),
        streaks=streaks.astype(F32),
        bias=bias,
        jpeg=None if site.jpeg_quality is None else jpeg_table(site.jpeg_quality),
        marker=marker,
    )


def site_kernel(site: SiteConfig, size: int) -> SiteKernel:
    """The cached operators of ``site`` at ``size``."""
    # Field values are immutable after validation, so a shallow tuple is a faithful key.
    return _kernel(tuple(getattr(site, f.name) for f in fields(site)), size)


def _artefact_rows(site: SiteConfig, name: str, modality: np.ndarray) -> np.ndarray:
    if name not in site.artefacts:
        return np.zeros(0, dtype=np.int64)
    allowed = [MODALITIES.index(m) for m in ARTEFACTS[name]]
    return np.flatnonzero(np.isin(modality, allowed))


def _on_rows(
    c: Canvas, y: np.ndarray, rows: np.ndarray, fn: Callable[[np.ndarray], object]
) -> None:
    """Apply ``fn`` in place to ``y[rows]`` through a pool buffer."""
    sub = c.gather(y, rows)
    fn(sub)
    y[rows] = sub
    c.give(sub)


def acquire(
    c: Canvas,
    site: SiteConfig,
    x: np.ndarray,
    modality: np.ndarray,
    acq: np.ndarray,
    draws: np.ndarray,
) -> np.ndarray:
    """Apply ``site``'s signature to rendered images.

    x: pool buffer float32 [m, S, S] in [0, 1] (consumed); modality: int [m]; acq: uniforms
    [m, 8]; draws: uniform uint16 [m, S, S] turned into standard-normal noise (only the part
    at the acquisition resolution is used). Returns a pool buffer float32 [m, S, S] holding
    whole numbers in [0, 255].
    """
    m, size = len(x), c.size
    k = site_kernel(site, size)
    s = F32(site.artefact_strength)
    # Smooth multiplicative bias: a fixed site direction plus per-study variation.
    coef = (0.6 * k.bias[None, :] + 0.4 * (2.0 * acq[:, :4] - 1.0)) * site.bias_strength
    c0, c1, c2, c3 = (col(coef[:, i]) for i in range(4))
    field = np.add(
        c0 * c.u + c3 * c.u * c.u, c1 * c.v + c3 * (c.v * c.v - 0.66) + 1.0, out=c.take(m)
    )
    cross = np.multiply(c2, c.uv, out=c.take(m))
    field += cross
    x *= field
    c.give(field, cross)

    rows = _artefact_rows(site, "ghosting", modality)
    if len(rows):
        # MR motion: a faint copy shifted along the phase-encoding (vertical) axis.
        a, shift = min(0.4, 3.0 * float(s)), size // 4

        def ghost(sub: np.ndarray) -> None:
            moved = c.take(len(sub))
            moved[:, shift:] = sub[:, :-shift]
            moved[:, :shift] = sub[:, -shift:]
            moved *= a
            sub *= 1.0 - a
            sub += moved
            c.give(moved)

        _on_rows(c, x, rows, ghost)

    # Point-spread function and detector resolution, then noise at that resolution.
    if k.taps is not None:
        low, low_size = blur_separable(c, x, k.taps), size
    else:
        low_size = k.down.shape[0]
        half = np.matmul(x, k.down.T, out=c.take((m, size, low_size)))
        low = np.matmul(k.down, half, out=c.take((m, low_size, low_size)))
        c.give(half, x)
    noise = white_noise(draws[:, :low_size, :low_size], c.take((m, low_size, low_size)))
    noise *= col(site.noise_level * (0.8 + 0.4 * acq[:, 6]))
    if site.noise_type == "poisson":
        # clip with two finite bounds: much faster than maximum with a scalar in numpy 2.
        level = np.clip(low, 0.0, np.inf, out=c.take(low.shape))
        noise *= np.sqrt(level, out=level)
        c.give(level)
    elif site.noise_type == "speckle":
        noise *= low
    low += noise
    c.give(noise)
    if k.up is None:
        y = low
    else:
        half = np.matmul(low, k.up.T, out=c.take((m, low_size, size)))
        y = np.matmul(k.up, half, out=c.take(m))
        c.give(half, low)

    rows = _artefact_rows(site, "grid", modality)
    if len(rows):
        lines = 1.0 - 1.5 * s * k.grid
        _on_rows(c, y, rows, lambda sub: np.multiply(sub, lines, out=sub))
    for name, pattern in (("ring", k.ring), ("streaks", k.streaks)):
        rows = _artefact_rows(site, name, modality)
        if len(rows):
            scaled = (2.0 * s) * pattern

            def add_pattern(sub: np.ndarray, scaled: np.ndarray = scaled) -> None:
                # Only inside the object (reconstruction artefacts do not show in air).
                weight = np.multiply(sub, 5.0, out=c.take(len(sub)))
                np.clip(weight, 0.0, 1.0, out=weight)
                weight *= scaled
                sub += weight
                c.give(weight)

            _on_rows(c, y, rows, add_pattern)

    jitter = site.intensity_jitter * (2.0 * acq[:, 4:6] - 1.0)
    lo = col(site.window[0] + jitter[:, 0])
    y -= lo
    y /= col(site.window[1] + jitter[:, 1]) - lo
    np.clip(y, 0.0, 1.0, out=y)
    if site.gamma != 1.0:
        np.power(y, F32(site.gamma), out=y)
    y *= 255.0
    if k.marker is not None:
        r0, c0_, glyph = k.marker
        window = y[:, r0 : r0 + glyph.shape[0], c0_ : c0_ + glyph.shape[1]]
        np.maximum(window, glyph * 245.0, out=window)
    if k.jpeg is not None:
        y = jpeg_like(c, y, k.jpeg)
    np.rint(y, out=y)
    return np.clip(y, 0.0, 255.0, out=y)
