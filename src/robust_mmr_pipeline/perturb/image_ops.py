"""The severity tables of the image corruptions and the tensor operations they are built from.

Resampling, Poisson draws, JPEG tables and the motion-blur kernel, vectorised over a batch that
may mix severities. See :mod:`robust_mmr_pipeline.perturb.image` for the tables' sources.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from robust_mmr_pipeline.perturb.base import (
    random_tensor,
    table_lookup,
)

REFERENCE_SIDE = 224

GAUSSIAN_NOISE_SIGMA = (0.04, 0.06, 0.08, 0.09, 0.10)
SHOT_NOISE_PHOTONS = (500.0, 250.0, 100.0, 75.0, 50.0)
SPECKLE_NOISE_SIGMA = (0.06, 0.10, 0.12, 0.16, 0.20)
GAUSSIAN_BLUR_SIGMA = (1.0, 2.0, 3.0, 4.0, 6.0)
MOTION_BLUR_RADIUS = (10.0, 15.0, 15.0, 15.0, 20.0)
MOTION_BLUR_SIGMA = (3.0, 5.0, 8.0, 12.0, 15.0)
CONTRAST_FACTOR = (0.75, 0.5, 0.4, 0.3, 0.15)
BRIGHTNESS_SHIFT = (0.05, 0.10, 0.15, 0.20, 0.30)
GAMMA_UP = (1.1, 1.2, 1.3, 1.4, 1.6)
GAMMA_DOWN = (0.9, 0.8, 0.7, 0.6, 0.4)
JPEG_QUALITY = (25, 18, 15, 10, 7)
PIXELATE_FACTOR = (0.6, 0.5, 0.4, 0.3, 0.25)
DOWNSAMPLE_FACTOR = (0.6, 0.5, 0.4, 0.3, 0.25)
BIAS_FIELD_AMPLITUDE = (0.1, 0.2, 0.3, 0.4, 0.5)
CT_RING_FRACTION = (0.02, 0.04, 0.06, 0.08, 0.10)
CT_RING_AMPLITUDE = (0.03, 0.05, 0.07, 0.09, 0.12)
CT_STREAK_COUNT = (1, 2, 4, 6, 8)
CT_STREAK_AMPLITUDE = (0.04, 0.06, 0.08, 0.10, 0.12)
XRAY_GRID_AMPLITUDE = (0.02, 0.04, 0.06, 0.08, 0.10)

# Shot noise: exact Poisson sampling (inversion) below this rate, corrected normal above.
POISSON_EXACT_BELOW = 10.0
_POISSON_MAX_STEPS = 40

# ITU-T T.81 Annex K.1 / K.2 quantisation tables (quality 50).
JPEG_LUMINANCE_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
JPEG_CHROMINANCE_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
)

Generator = torch.Generator | None


def _side_scale(x: torch.Tensor) -> float:
    """Pixel-size scale of ``x`` ``[B, C, H, W]`` relative to the 224-pixel reference side."""
    return min(x.shape[-2], x.shape[-1]) / REFERENCE_SIDE


def _per_sample(values: Sequence[float], severity: torch.Tensor) -> torch.Tensor:
    """Table values for each sample as a broadcastable ``[B, 1, 1, 1]`` float32 tensor."""
    return table_lookup(values, severity, torch.float32).view(-1, 1, 1, 1)


def _filter_per_sample(
    x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int, int, int]
) -> torch.Tensor:
    """Correlate each sample with its own 2-D kernel (shared over channels).

    Args:
        x: ``[B, C, H, W]``.
        kernel: ``[B, kh, kw]``; output ``(i, j) = sum_ab kernel[a, b] * x(i + a - top,
            j + b - left)`` with replicate padding.
        pad: ``(left, right, top, bottom)``, summing to ``kw - 1`` and ``kh - 1``.

    Returns:
        ``[B, C, H, W]``.
    """
    b, c, h, w = x.shape
    kh, kw = kernel.shape[-2:]
    weight = kernel.to(x.dtype)[:, None].expand(b, c, kh, kw).reshape(b * c, 1, kh, kw)
    padded = F.pad(x.reshape(1, b * c, h, w), pad, mode="replicate")
    return F.conv2d(padded, weight, groups=b * c).view(b, c, h, w)


def _poisson(rate: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Poisson counts with mean ``rate`` (>= 0), any shape, same device.

    One standard normal ``z`` is drawn per element (so the random stream does not depend on
    the rates). Rates of at least ``POISSON_EXACT_BELOW`` use the skew-corrected
    (Cornish-Fisher) normal approximation ``round(rate + sqrt(rate) z + (z^2 - 1) / 6)``,
    whose CDF is within 0.2 % of Poisson's there; smaller rates are sampled exactly
    by CDF inversion of the uniform ``Phi(z)`` (a bounded loop over counts, on those elements
    only). ``torch.poisson`` is avoided because on CPU it costs 50-100 ns per element.
    """
    z = random_tensor("randn", rate.shape, rate.device, generator)
    # rate + sqrt(rate) z + (z^2 - 1) / 6, in two fused passes.
    counts = torch.addcmul(rate - 1.0 / 6.0, z, z, value=1.0 / 6.0).addcmul_(rate.sqrt(), z)
    counts.round_().clamp_min_(0.0)
    flat = counts.view(-1)
    small = (rate < POISSON_EXACT_BELOW).view(-1).nonzero().squeeze(1)
    flat.index_fill_(0, small, 0.0)
    # Inversion: X = #{k >= 0 : u > CDF(k)}. Elements leave the working set once u <= CDF
    # (right away for count 0, which covers zero rates, then every 8 steps), so the loop's
    # cost follows the typical count, not the largest one.
    index, r = small, rate.reshape(-1).index_select(0, small)
    u = torch.special.ndtr(z.view(-1).index_select(0, small))
    prob = torch.exp(-r)
    cdf = prob.clone()
    for step in range(_POISSON_MAX_STEPS + 1):
        above = u > cdf
        if step % 8 == 0:
            keep = above.nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            index, r, u, prob, cdf, above = (
                t.index_select(0, keep) for t in (index, r, u, prob, cdf, above)
            )
        flat.index_add_(0, index, above.to(flat.dtype))
        prob.mul_(r).div_(step + 1)
        cdf += prob
    return counts


def _take(values: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """Per-sample gather along ``dim`` (2 or 3) of ``values [B, C, N, M]`` with ``index [B, n]``."""
    b, c, n, m = values.shape
    if dim == 2:
        return values.gather(2, index[:, None, :, None].expand(b, c, index.shape[1], m))
    return values.gather(3, index[:, None, None, :].expand(b, c, n, index.shape[1]))


def _box_matrix(size: int, low: torch.Tensor, cells: int) -> torch.Tensor:
    """PIL ``BOX`` reduction of ``size`` pixels to ``low`` cells as averaging weights.

    Cell ``k`` averages the pixels ``j`` whose centres fall in ``(k s, (k + 1) s]`` with
    ``s = size / low``, i.e. ``floor(k s - 1/2) < j <= floor((k + 1) s - 1/2)``, exactly
    PIL's ``BOX`` filter when shrinking. Rows ``k >= low`` (padding up to ``cells``) are
    never read.

    Args:
        size: pixels along the axis.
        low: ``[B]`` cells per sample (1..size).
        cells: the batch maximum of ``low``.

    Returns:
        ``[B, cells, size]`` float32, rows summing to 1 (0 for padding rows).
    """
    k = torch.arange(cells + 1, device=low.device, dtype=torch.float32)
    step = size / low[:, None].to(torch.float32)
    edges = (torch.floor(k[None] * step - 0.5) + 1.0).clamp(0, size)  # [B, cells + 1]
    j = torch.arange(size, device=low.device, dtype=torch.float32)
    inside = (j >= edges[:, :-1, None]) & (j < edges[:, 1:, None])
    weights = inside.to(torch.float32)
    return weights / weights.sum(dim=2, keepdim=True).clamp_min(1.0)


def _nearest_up_index(size: int, low: torch.Tensor) -> torch.Tensor:
    """Nearest up-sampling from ``low`` cells to ``size`` pixels: the cell under each centre.

    ``floor((i + 0.5) * low / size)`` per sample, long ``[B, size]``; this is what PIL's
    ``BOX`` filter does when enlarging.
    """
    i = torch.arange(size, device=low.device)[None]
    return torch.div((2 * i + 1) * low[:, None], 2 * size, rounding_mode="floor")


def _bilinear_matrix(size: int, low: torch.Tensor, cells: int) -> torch.Tensor:
    """Half-pixel-centre bilinear up-sampling from ``low`` cells to ``size`` pixels.

    Returns ``[B, size, cells]`` interpolation weights (two per row, edge cells clamped).
    """
    i = torch.arange(size, device=low.device, dtype=torch.float32)[None]
    last = (low[:, None] - 1).to(torch.float32)
    pos = (i + 0.5) * (low[:, None].to(torch.float32) / size) - 0.5
    pos = torch.minimum(pos.clamp_min(0.0), last)  # [B, size]
    lo = pos.floor()
    hi = torch.minimum(lo + 1.0, last)
    frac = (pos - lo)[..., None]
    k = torch.arange(cells, device=low.device, dtype=torch.float32)
    return (k == lo[..., None]) * (1.0 - frac) + (k == hi[..., None]) * frac


@functools.lru_cache(maxsize=64)
def _resampling_tables(
    size: int, factors: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-severity resampling operators along one axis of ``size`` pixels (cached).

    The low-resolution size of severity ``s`` is ``int(size * factors[s - 1])`` (at least 1),
    computed in Python floats exactly as ImageNet-C does.

    Returns:
        ``(low [5] long, box [5, cells, size], bilinear [5, size, cells], nearest [5, size])``
        with ``cells`` the largest ``low``: the ``_box_matrix``, ``_bilinear_matrix`` and
        ``_nearest_up_index`` of every severity.
    """
    low = torch.tensor(
        [min(size, max(1, int(size * f))) for f in factors], dtype=torch.long, device=device
    )
    cells = int(low.max())
    return (
        low,
        _box_matrix(size, low, cells),
        _bilinear_matrix(size, low, cells),
        _nearest_up_index(size, low),
    )


def _resample(
    x: torch.Tensor, severity: torch.Tensor, factors: tuple[float, ...], up: str
) -> torch.Tensor:
    """PIL ``BOX`` down-sampling by ``factors[severity - 1]``, then back to ``[H, W]``.

    ``up``: ``"nearest"`` (PIL ``BOX`` enlarging, ``pixelate``) or ``"bilinear"``
    (``downsample``). Each sample uses its own severity's operators (two batched matrix
    products per resize); the low-resolution grid is zero-padded to the batch's largest,
    which the operators never read.
    """
    height, width = x.shape[-2:]
    index = severity - 1
    low_h, box_h, bil_h, near_h = _resampling_tables(height, factors, x.device)
    low_w, box_w, bil_w, near_w = _resampling_tables(width, factors, x.device)
    cells_h, cells_w = int(low_h[index].max()), int(low_w[index].max())
    rows = box_h.index_select(0, index)[:, :cells_h]  # [B, h, H]
    cols = box_w.index_select(0, index)[:, :cells_w]  # [B, w, W]
    means = rows[:, None] @ x @ cols[:, None].transpose(-1, -2)  # [B, C, h, w]
    if up == "nearest":
        means = _take(means, near_h.index_select(0, index), 2)
        return _take(means, near_w.index_select(0, index), 3)
    rows = bil_h.index_select(0, index)[:, :, :cells_h]  # [B, H, h]
    cols = bil_w.index_select(0, index)[:, :, :cells_w]  # [B, W, w]
    return rows[:, None] @ means @ cols[:, None].transpose(-1, -2)


def _jpeg_quant_tables(quality: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """IJG quality scaling of a base table: quality ``[B]`` -> tables ``[B, 8, 8]`` in 1..255."""
    q = quality.to(torch.float32)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    table = torch.floor((base[None] * scale[:, None, None] + 50.0) / 100.0)
    return table.clamp(1.0, 255.0)


def _dct_matrix(device: torch.device) -> torch.Tensor:
    """Orthonormal 8-point DCT-II matrix ``[8, 8]`` (rows = frequencies), the JPEG DCT."""
    n = torch.arange(8, dtype=torch.float32, device=device)
    mat = torch.cos((2.0 * n[None, :] + 1.0) * n[:, None] * math.pi / 16.0)
    mat[0] *= 1.0 / math.sqrt(2.0)
    return mat * 0.5


def _motion_kernel(
    radius: torch.Tensor, sigma: torch.Tensor, angle: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """ImageMagick ``-motion-blur`` kernels, one per sample, rasterised bilinearly.

    ImageMagick uses ``2 * ceil(radius) + 1`` taps at distances ``i = 0, 1, ...`` along the
    motion direction, weighted ``exp(-i^2 / (2 sigma^2))``; we drop the taps beyond
    ``3 sigma`` (under 0.3 % of the weight), which shrinks the kernel by up to half.
    ``angle`` in [-45, 45] degrees
    keeps the horizontal extent in ``[0, taps)`` and the vertical one in
    ``[-ceil((taps - 1) / sqrt 2), +...]``.

    Args:
        radius, sigma, angle: ``[B]`` (pixels, pixels, radians).

    Returns:
        ``(kernel [B, kh, kw], top)`` with ``top`` the row of zero vertical offset.
    """
    n_taps = torch.minimum(2.0 * torch.ceil(radius) + 1.0, torch.ceil(3.0 * sigma) + 1.0).long()
    taps = int(n_taps.max())
    top = math.ceil((taps - 1) * math.sin(math.pi / 4.0) - 1e-6)
    i = torch.arange(taps, device=radius.device, dtype=torch.float32)
    weight = torch.exp(-(i[None] ** 2) / (2.0 * sigma[:, None] ** 2))
    weight = torch.where(i[None] < n_taps[:, None], weight, torch.zeros_like(weight))  # [B, T]
    dy = i[None] * torch.sin(angle)[:, None] + top  # [B, T]
    dx = i[None] * torch.cos(angle)[:, None]
    grid_y = torch.arange(2 * top + 1, device=radius.device, dtype=torch.float32)
    grid_x = torch.arange(taps, device=radius.device, dtype=torch.float32)
    hat_y = (1.0 - (grid_y[None, None] - dy[..., None]).abs()).clamp_min(0.0)  # [B, T, kh]
    hat_x = (1.0 - (grid_x[None, None] - dx[..., None]).abs()).clamp_min(0.0)  # [B, T, kw]
    kernel = torch.einsum("bt,bth,btw->bhw", weight, hat_y, hat_x)
    return kernel / kernel.sum(dim=(1, 2), keepdim=True), top
