"""Image corruptions on batched torch tensors, five calibrated severities each.

All corruptions take ``images`` float ``[B, C, H, W]`` in [0, 1] on any device and return
the same shape, dtype and device, clamped to [0, 1]. They are vectorised over the batch (no
Python loop over samples; the only Python loops run over small fixed counts: the 16 streak
directions of ``ct_streak`` and at most 41 Poisson inversion steps of ``shot_noise``) and a
batch may mix severities (``severity`` a long tensor ``[B]``). Computation is float32
whatever the input float dtype (the result is cast back). No gradients are recorded.

Severity tables
---------------
Sizes in pixels are defined for a 224-pixel image side (the ImageNet-C resolution) and scaled
by ``min(H, W) / 224`` so a severity means the same visual strength at 128 or 288 pixels.

=================  =======================================  ==============================  ========
name               parameter (severity 1 .. 5)              convention                      modality
=================  =======================================  ==============================  ========
gaussian_noise     sigma 0.04 0.06 0.08 0.09 0.10           CIFAR-10-C                      any
shot_noise         photons/unit 500 250 100 75 50           CIFAR-10-C                      any
speckle_noise      sigma 0.06 0.10 0.12 0.16 0.20           CIFAR-10-C                      any
gaussian_blur      sigma@224 1 2 3 4 6                      ImageNet-C                      any
motion_blur        (radius, sigma)@224 (10,3) (15,5)        ImageNet-C (ImageMagick kernel) any
                   (15,8) (15,12) (20,15)
contrast           factor 0.75 0.5 0.4 0.3 0.15             CIFAR-10-C                      any
brightness         +V 0.05 0.10 0.15 0.20 0.30              CIFAR-10-C                      any
gamma              gamma up 1.1 1.2 1.3 1.4 1.6 /           MedMNIST-C (ChestMNIST)         any
                   down 0.9 0.8 0.7 0.6 0.4
jpeg               quality 25 18 15 10 7                    ImageNet-C                      any
pixelate           factor 0.6 0.5 0.4 0.3 0.25              ImageNet-C                      any
downsample         factor 0.6 0.5 0.4 0.3 0.25              ImageNet-C pixelate factors     any
bias_field         log-field amplitude 0.1 .. 0.5           TorchIO RandomBiasField         mri
ct_ring            channels 2..10 % / amplitude .03 .. .12  ours                            ct
ct_streak          streaks 1 2 4 6 8 / amplitude .04 .. .12 ours                            ct
xray_grid          amplitude 0.02 0.04 0.06 0.08 0.10       ours                            x-ray
=================  =======================================  ==============================  ========

References: Hendrycks & Dietterich, "Benchmarking neural network robustness to common
corruptions and perturbations", ICLR 2019 (ImageNet-C ``make_imagenet_c.py``; CIFAR-10-C
``make_cifar_c.py``, the small-image tables, which suit grayscale radiographs where the
ImageNet-C noise levels obliterate anatomy); Di Salvo et al., "MedMNIST-C", 2024
(``medmnistc/corruptions/registry.py``); Pérez-García et al., "TorchIO", 2021 (bias field as
the exponential of a random order-3 polynomial, after Sudre et al. 2017). "ours" marks
modality artefacts without a published benchmark table; their amplitudes keep the artefact
clearly visible at severity 1 and dominant but not anatomy-erasing at severity 5.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from robust_mmr_pipeline.perturb.base import (
    Perturbation,
    PerturbationRegistry,
    normalize_modality,
    random_tensor,
    severity_tensor,
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


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# kernels: x float32 [B, C, H, W] in [0, 1], severity long [B] in 1..5 -> [B, C, H, W]
# --------------------------------------------------------------------------------------------


def _gaussian_noise(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Additive white noise ``x + sigma * N(0, 1)``; sigma per ``GAUSSIAN_NOISE_SIGMA``."""
    noise = random_tensor("randn", x.shape, x.device, generator)
    return noise.mul_(_per_sample(GAUSSIAN_NOISE_SIGMA, severity)).add_(x)


def _shot_noise(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Photon (Poisson) noise ``Poisson(lam * x) / lam``; lam per ``SHOT_NOISE_PHOTONS``."""
    lam = _per_sample(SHOT_NOISE_PHOTONS, severity)
    return _poisson(x.clamp(0.0, 1.0) * lam, generator) / lam


def _speckle_noise(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Multiplicative noise ``x + x * sigma * N(0, 1)`` (ultrasound/OCT-like speckle)."""
    noise = random_tensor("randn", x.shape, x.device, generator)
    return noise.mul_(_per_sample(SPECKLE_NOISE_SIGMA, severity)).add_(1.0).mul_(x)


def _gaussian_blur(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Separable Gaussian blur, sigma ``GAUSSIAN_BLUR_SIGMA * side / 224``, radius 3 sigma.

    One kernel length (the batch's largest) with per-sample weights, replicate borders
    (skimage's ``gaussian`` default, as ImageNet-C).
    """
    del generator
    sigma = table_lookup(GAUSSIAN_BLUR_SIGMA, severity, torch.float32) * _side_scale(x)
    radius = max(1, math.ceil(3.0 * float(sigma.max())))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    kernel = torch.exp(-(t[None] ** 2) / (2.0 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # [B, K]
    out = _filter_per_sample(x, kernel[:, :, None], (0, 0, radius, radius))
    return _filter_per_sample(out, kernel[:, None, :], (radius, radius, 0, 0))


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


def _motion_blur(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Linear motion blur (ImageMagick kernel as ImageNet-C), angle ~ U(-45, 45) degrees.

    Radius and sigma per ``MOTION_BLUR_RADIUS`` / ``MOTION_BLUR_SIGMA`` at 224 px, scaled.
    """
    scale = _side_scale(x)
    radius = table_lookup(MOTION_BLUR_RADIUS, severity, torch.float32) * scale
    sigma = table_lookup(MOTION_BLUR_SIGMA, severity, torch.float32) * scale
    angle = (random_tensor("rand", (x.shape[0],), x.device, generator) - 0.5) * (math.pi / 2.0)
    kernel, top = _motion_kernel(radius, sigma, angle)
    return _filter_per_sample(x, kernel, (0, kernel.shape[-1] - 1, top, top))


def _contrast(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Contrast reduction towards the per-image, per-channel mean: ``(x - m) * c + m``."""
    del generator
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return (x - mean) * _per_sample(CONTRAST_FACTOR, severity) + mean


def _brightness(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Brightness: add ``BRIGHTNESS_SHIFT`` to the HSV value (grayscale: to the intensity).

    For RGB (C = 3) the value ``V = max_c x`` is shifted and the colour rescaled by
    ``V' / V`` (hue and saturation kept, black turns gray), as ImageNet-C's skimage round
    trip; other channel counts shift each channel.
    """
    del generator
    shift = _per_sample(BRIGHTNESS_SHIFT, severity)
    if x.shape[1] != 3:
        return x + shift
    value = x.amax(dim=1, keepdim=True)
    new_value = (value + shift).clamp(0.0, 1.0)
    ratio = new_value / value.clamp_min(1e-12)
    return torch.where(value > 0, x * ratio, new_value.expand_as(x))


def _gamma(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Gamma ``x ** g``; per sample a fair coin picks ``GAMMA_UP`` (darker) or ``GAMMA_DOWN``."""
    coin = random_tensor("rand", (x.shape[0],), x.device, generator).view(-1, 1, 1, 1) < 0.5
    gamma = torch.where(coin, _per_sample(GAMMA_UP, severity), _per_sample(GAMMA_DOWN, severity))
    return torch.log(x.clamp(0.0, 1.0)).mul_(gamma).exp_()  # x ** gamma, 0 -> 0


def _jpeg(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """JPEG-like compression: 8-bit, 8x8 block DCT, IJG-scaled quantisation, inverse DCT.

    Quality per ``JPEG_QUALITY`` (ImageNet-C). One channel: the luminance table. Three
    channels: JFIF RGB -> YCbCr, luminance table on Y and chrominance table on Cb / Cr, no
    chroma subsampling. Other channel counts: the luminance table on each channel. Borders
    are replicate-padded to a multiple of 8 and cropped back; the decoder output is rounded
    to 8 bits. Not differentiable (rounding), vectorised over blocks and samples.
    """
    del generator
    b, c, height, width = x.shape
    device = x.device
    quality = table_lookup(JPEG_QUALITY, severity, torch.float32)
    luma = _jpeg_quant_tables(quality, torch.tensor(JPEG_LUMINANCE_TABLE, device=device))
    pixels = (x.clamp(0.0, 1.0) * 255.0).round()
    if c == 3:
        r, g, bl = pixels.unbind(1)
        pixels = torch.stack(
            (
                0.299 * r + 0.587 * g + 0.114 * bl,
                128.0 - 0.168736 * r - 0.331264 * g + 0.5 * bl,
                128.0 + 0.5 * r - 0.418688 * g - 0.081312 * bl,
            ),
            dim=1,
        )
        chroma = _jpeg_quant_tables(quality, torch.tensor(JPEG_CHROMINANCE_TABLE, device=device))
        tables = torch.stack((luma, chroma, chroma), dim=1)  # [B, 3, 8, 8]
    else:
        tables = luma[:, None].expand(b, c, 8, 8)
    pad_h, pad_w = (-height) % 8, (-width) % 8
    if pad_h or pad_w:
        pixels = F.pad(pixels, (0, pad_w, 0, pad_h), mode="replicate")
    hp, wp = pixels.shape[-2:]
    nh, nw = hp // 8, wp // 8
    # [B, C, nh, 8, nw, 8] -> rows of 64 block pixels; the 2-D DCT is one 64 x 64 matmul.
    blocks = (pixels - 128.0).view(b, c, nh, 8, nw, 8).permute(0, 1, 2, 4, 3, 5)
    blocks = blocks.reshape(b, c, nh * nw, 64)
    dct = _dct_matrix(device)
    dct2 = torch.kron(dct, dct)  # [64, 64]: vec(D X D^T) = kron(D, D) vec(X), row-major
    q = tables.reshape(b, c, 1, 64)
    coeffs = torch.round(blocks @ dct2.T / q) * q
    blocks = (coeffs @ dct2).view(b, c, nh, nw, 8, 8).permute(0, 1, 2, 4, 3, 5)
    pixels = (blocks.reshape(b, c, hp, wp) + 128.0)[..., :height, :width]
    if c == 3:
        y, cb, cr = pixels.unbind(1)
        pixels = torch.stack(
            (
                y + 1.402 * (cr - 128.0),
                y - 0.344136 * (cb - 128.0) - 0.714136 * (cr - 128.0),
                y + 1.772 * (cb - 128.0),
            ),
            dim=1,
        )
    return pixels.clamp(0.0, 255.0).round() / 255.0


def _pixelate(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Pixelation: PIL ``BOX`` down-sampling by ``PIXELATE_FACTOR`` and ``BOX`` up-sampling.

    As ImageNet-C (``x.resize(small, BOX).resize(full, BOX)``); enlarging with ``BOX`` is
    nearest-neighbour on pixel centres.
    """
    del generator
    return _resample(x, severity, PIXELATE_FACTOR, "nearest")


def _downsample(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Resolution loss: box down-sampling by ``DOWNSAMPLE_FACTOR``, bilinear up-sampling.

    The "down-up sampling" of the Robust-MMR paper: a softer, blurrier loss of detail than
    ``pixelate`` (half-pixel-centre bilinear interpolation, edge cells clamped).
    """
    del generator
    return _resample(x, severity, DOWNSAMPLE_FACTOR, "bilinear")


def _bias_field(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """MR bias field: ``x * exp(a * f)``, ``f`` a random order-3 polynomial with ``max|f| = 1``.

    Coefficients of the 10 monomials ``u^i v^j`` (``i + j <= 3``, ``u, v`` in [-1, 1]) are
    U(-1, 1); normalising ``f`` makes ``a`` (``BIAS_FIELD_AMPLITUDE``) the log-gain range,
    so severity 5 spans gains ``exp(+-0.5)`` = 0.61 .. 1.65, TorchIO's default coefficient
    range.
    """
    b, _, height, width = x.shape
    coef = random_tensor("rand", (b, 10), x.device, generator) * 2.0 - 1.0
    v = torch.linspace(-1.0, 1.0, height, device=x.device)[:, None]
    u = torch.linspace(-1.0, 1.0, width, device=x.device)[None, :]
    monomials = torch.stack(
        [(u**i * v**j).expand(height, width) for i in range(4) for j in range(4 - i)]
    )  # [10, H, W]
    field = torch.einsum("bk,khw->bhw", coef, monomials)
    field = field / field.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    amplitude = table_lookup(BIAS_FIELD_AMPLITUDE, severity, torch.float32)
    return x * torch.exp(amplitude[:, None, None] * field)[:, None]


def _pixel_grid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column coordinates ``[1, H, 1]`` and ``[1, 1, W]`` (pixel units, float32)."""
    height, width = x.shape[-2:]
    rows = torch.arange(height, device=x.device, dtype=torch.float32).view(1, height, 1)
    cols = torch.arange(width, device=x.device, dtype=torch.float32).view(1, 1, width)
    return rows, cols


def _ct_ring(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """CT ring artefacts: concentric rings from miscalibrated detector channels.

    Radial channels of width ``max(1, side / 224)`` px inside the field of view (radius
    ``min(H, W) / 2`` around a centre jittered by up to 5 % of the side) are ranked by a
    random draw; the first ``ceil(fraction * channels)`` (``CT_RING_FRACTION``) are
    defective and add ``+-amplitude * U(0.5, 1)`` (``CT_RING_AMPLITUDE``) along their ring.
    The ranking is severity-independent, so higher severities add rings to lower ones.
    """
    b, _, height, width = x.shape
    side = min(height, width)
    bin_width = max(1.0, side / REFERENCE_SIDE)
    n_bins = math.ceil(math.hypot(height, width) / bin_width) + 2
    n_fov = max(1, int(side / 2.0 / bin_width))
    jitter = random_tensor("rand", (b, 2), x.device, generator) * 2.0 - 1.0
    rank_draw = random_tensor("rand", (b, n_bins), x.device, generator)
    sign = torch.where(random_tensor("rand", (b, n_bins), x.device, generator) < 0.5, -1.0, 1.0)
    magnitude = 0.5 + 0.5 * random_tensor("rand", (b, n_bins), x.device, generator)
    in_fov = torch.arange(n_bins, device=x.device) < n_fov
    rank_draw = torch.where(in_fov[None], rank_draw, torch.full_like(rank_draw, 2.0))
    rank = rank_draw.argsort(dim=1).argsort(dim=1)
    fraction = table_lookup(CT_RING_FRACTION, severity, torch.float32)
    count = torch.ceil(fraction * n_fov).long().clamp(min=1)
    amplitude = table_lookup(CT_RING_AMPLITUDE, severity, torch.float32)
    profile = torch.where(
        rank < count[:, None], amplitude[:, None] * sign * magnitude, torch.zeros_like(magnitude)
    )
    rows, cols = _pixel_grid(x)
    cy = (height - 1) / 2.0 + jitter[:, 0].view(b, 1, 1) * 0.05 * side
    cx = (width - 1) / 2.0 + jitter[:, 1].view(b, 1, 1) * 0.05 * side
    radius = torch.sqrt((rows - cy) ** 2 + (cols - cx) ** 2)
    bins = (radius / bin_width).long().clamp(max=n_bins - 1).view(b, -1)
    return x + profile.gather(1, bins).view(b, 1, height, width)


_STREAK_MAX = max(CT_STREAK_COUNT)
_STREAK_ANGLE_BINS = 2048  # over the full circle
_STREAK_ANGULAR_SIGMA = 0.012  # radians
_STREAK_DECAY = 0.5  # Gaussian decay length as a fraction of the side


def _ct_streak(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """CT streak artefacts (metal / photon starvation): alternating bright and dark streaks.

    ``CT_STREAK_COUNT`` lines at random angles through a random source point in the central
    60 % of the image; each has amplitude ``+-CT_STREAK_AMPLITUDE * U(0.5, 1)`` (even lines
    bright, odd dark), a Gaussian angular profile (0.012 rad, i.e. ~1 px at 80 px from the
    source) tabulated over 2048 angle bins, and fades as ``exp(-d^2 / (2 (side / 2)^2))``
    with the distance ``d`` from the source. Line draws are severity-independent: higher
    severities add lines and raise amplitudes.
    """
    b, _, height, width = x.shape
    side = min(height, width)
    centre = 0.2 + 0.6 * random_tensor("rand", (b, 2), x.device, generator)
    theta = random_tensor("rand", (b, _STREAK_MAX), x.device, generator) * math.pi
    magnitude = 0.5 + 0.5 * random_tensor("rand", (b, _STREAK_MAX), x.device, generator)
    k = torch.arange(_STREAK_MAX, device=x.device)
    sign = torch.where(k % 2 == 0, 1.0, -1.0)
    count = table_lookup(CT_STREAK_COUNT, severity, torch.float32)
    amplitude = table_lookup(CT_STREAK_AMPLITUDE, severity, torch.float32)
    amp = torch.where(
        k[None] < count[:, None], amplitude[:, None] * sign * magnitude, torch.zeros_like(magnitude)
    )  # [B, K]
    # Angular profile [B, bins] over [-pi, pi): each line shows at theta and theta - pi; its
    # Gaussian is evaluated on the +-5 sigma bins around those two angles and scattered in.
    bin_width = 2.0 * math.pi / _STREAK_ANGLE_BINS
    half = math.ceil(5.0 * _STREAK_ANGULAR_SIGMA / bin_width)
    offsets = torch.arange(-half, half + 1, device=x.device)
    directions = torch.cat((theta, theta - math.pi), dim=1)  # [B, 2K] in [-pi, pi)
    centre_bin = torch.floor((directions + math.pi) / bin_width).long()
    bins_near = centre_bin[..., None] + offsets  # [B, 2K, window]
    delta = (bins_near.to(torch.float32) + 0.5) * bin_width - math.pi - directions[..., None]
    weights = torch.cat((amp, amp), dim=1)[..., None] * torch.exp(
        -(delta**2) / (2 * _STREAK_ANGULAR_SIGMA**2)
    )
    bins_near = bins_near.remainder(_STREAK_ANGLE_BINS)
    profile = torch.zeros(b, _STREAK_ANGLE_BINS, device=x.device)
    empty = torch.zeros_like(profile)
    for line in range(2 * _STREAK_MAX):  # plain scatters summed in order: deterministic on GPU
        profile += empty.scatter(1, bins_near[:, line], weights[:, line])
    rows, cols = _pixel_grid(x)
    dy = rows - (centre[:, 0] * (height - 1)).view(b, 1, 1)  # [B, H, 1]
    dx = cols - (centre[:, 1] * (width - 1)).view(b, 1, 1)  # [B, 1, W]
    bins = torch.atan2(dy, dx).add_(math.pi).mul_(1.0 / bin_width).long()
    bins = bins.clamp_(0, _STREAK_ANGLE_BINS - 1).view(b, -1)
    scale = 1.0 / (2.0 * (_STREAK_DECAY * side) ** 2)
    decay = torch.exp(-(dy**2) * scale) * torch.exp(-(dx**2) * scale)  # separable, [B, H, W]
    streaks = profile.gather(1, bins).view(b, height, width).mul_(decay)
    return x + streaks[:, None]


def _xray_grid(x: torch.Tensor, severity: torch.Tensor, generator: Generator) -> torch.Tensor:
    """X-ray anti-scatter grid lines: a fine sinusoidal line pattern (and its moire).

    Period U(2.5, 6) px, horizontal or vertical lines (fair coin) tilted by U(-2, 2) degrees,
    random phase; amplitude ``XRAY_GRID_AMPLITUDE``, additive.
    """
    b = x.shape[0]
    draws = random_tensor("rand", (b, 4), x.device, generator)
    period = 2.5 + 3.5 * draws[:, 0]
    orientation = torch.where(draws[:, 1] < 0.5, 0.0, math.pi / 2.0)
    angle = orientation + (draws[:, 2] * 2.0 - 1.0) * math.radians(2.0)
    phase = draws[:, 3] * 2.0 * math.pi
    rows, cols = _pixel_grid(x)
    coordinate = cols * torch.cos(angle).view(b, 1, 1) + rows * torch.sin(angle).view(b, 1, 1)
    pattern = torch.sin(2.0 * math.pi * coordinate / period.view(b, 1, 1) + phase.view(b, 1, 1))
    return x + _per_sample(XRAY_GRID_AMPLITUDE, severity) * pattern[:, None]


# --------------------------------------------------------------------------------------------
# registry and public entry point
# --------------------------------------------------------------------------------------------

IMAGE_PERTURBATIONS = PerturbationRegistry("image")

_IMAGE_ENTRIES = (
    Perturbation(
        name="gaussian_noise",
        kind="image",
        fn=_gaussian_noise,
        description="additive white Gaussian noise (electronic / quantum noise)",
        severity_table={"sigma": GAUSSIAN_NOISE_SIGMA},
        convention="CIFAR-10-C gaussian_noise",
    ),
    Perturbation(
        name="shot_noise",
        kind="image",
        fn=_shot_noise,
        description="Poisson photon noise, Poisson(lam * x) / lam (low-dose acquisition)",
        severity_table={"photons": SHOT_NOISE_PHOTONS},
        convention="CIFAR-10-C shot_noise",
    ),
    Perturbation(
        name="speckle_noise",
        kind="image",
        fn=_speckle_noise,
        description="multiplicative Gaussian noise x + x * sigma * n (ultrasound / OCT speckle)",
        severity_table={"sigma": SPECKLE_NOISE_SIGMA},
        convention="CIFAR-10-C speckle_noise",
    ),
    Perturbation(
        name="gaussian_blur",
        kind="image",
        fn=_gaussian_blur,
        description="Gaussian blur (defocus, low-pass reconstruction kernel)",
        severity_table={"sigma_at_224px": GAUSSIAN_BLUR_SIGMA},
        convention="ImageNet-C gaussian_blur, scaled by side/224",
    ),
    Perturbation(
        name="motion_blur",
        kind="image",
        fn=_motion_blur,
        description="linear motion blur at a random angle in [-45, 45] degrees (patient motion)",
        severity_table={"radius_at_224px": MOTION_BLUR_RADIUS, "sigma_at_224px": MOTION_BLUR_SIGMA},
        convention="ImageNet-C motion_blur (ImageMagick kernel), scaled by side/224",
    ),
    Perturbation(
        name="contrast",
        kind="image",
        fn=_contrast,
        description="contrast reduction towards the image mean (windowing / exposure)",
        severity_table={"factor": CONTRAST_FACTOR},
        convention="CIFAR-10-C contrast",
    ),
    Perturbation(
        name="brightness",
        kind="image",
        fn=_brightness,
        description="additive brightness shift of the HSV value (over-exposure)",
        severity_table={"shift": BRIGHTNESS_SHIFT},
        convention="CIFAR-10-C brightness",
    ),
    Perturbation(
        name="gamma",
        kind="image",
        fn=_gamma,
        description="gamma curve x ** g, darker or brighter by a per-sample coin (display LUT)",
        severity_table={"gamma_up": GAMMA_UP, "gamma_down": GAMMA_DOWN},
        convention="MedMNIST-C ChestMNIST gamma_corr_up / gamma_corr_down",
    ),
    Perturbation(
        name="jpeg",
        kind="image",
        fn=_jpeg,
        description="JPEG-like lossy compression (8x8 DCT, IJG-scaled quantisation tables)",
        severity_table={"quality": JPEG_QUALITY},
        convention="ImageNet-C jpeg_compression",
    ),
    Perturbation(
        name="pixelate",
        kind="image",
        fn=_pixelate,
        description="box down-sampling then nearest up-sampling (blocky low resolution)",
        severity_table={"factor": PIXELATE_FACTOR},
        convention="ImageNet-C pixelate",
    ),
    Perturbation(
        name="downsample",
        kind="image",
        fn=_downsample,
        description="box down-sampling then bilinear up-sampling (low-resolution acquisition)",
        severity_table={"factor": DOWNSAMPLE_FACTOR},
        convention="ours; ImageNet-C pixelate factors",
    ),
    Perturbation(
        name="bias_field",
        kind="image",
        fn=_bias_field,
        description="smooth multiplicative intensity inhomogeneity (MR coil bias field)",
        severity_table={"log_amplitude": BIAS_FIELD_AMPLITUDE},
        convention="TorchIO RandomBiasField (order-3 polynomial), severity 5 = its default",
        modalities=("mri",),
    ),
    Perturbation(
        name="ct_ring",
        kind="image",
        fn=_ct_ring,
        description="concentric ring artefacts from miscalibrated CT detector channels",
        severity_table={"channel_fraction": CT_RING_FRACTION, "amplitude": CT_RING_AMPLITUDE},
        convention="ours",
        modalities=("ct",),
    ),
    Perturbation(
        name="ct_streak",
        kind="image",
        fn=_ct_streak,
        description="bright and dark streaks from a point (CT metal / photon starvation)",
        severity_table={"streaks": CT_STREAK_COUNT, "amplitude": CT_STREAK_AMPLITUDE},
        convention="ours",
        modalities=("ct",),
    ),
    Perturbation(
        name="xray_grid",
        kind="image",
        fn=_xray_grid,
        description="fine parallel anti-scatter grid lines and their moire (radiography)",
        severity_table={"amplitude": XRAY_GRID_AMPLITUDE},
        convention="ours",
        modalities=("x-ray",),
    ),
)
for _entry in _IMAGE_ENTRIES:
    IMAGE_PERTURBATIONS.register(_entry)


def _modality_mask(
    entry: Perturbation,
    modality: str | Sequence[str | None] | None,
    batch: int,
    device: torch.device,
) -> torch.Tensor | None:
    """Per-sample ``[B]`` bool: whether ``entry`` is typical for each sample's modality."""
    if modality is None or entry.modalities is None:
        return None
    if isinstance(modality, str):
        return torch.full((batch,), entry.applies_to(modality), dtype=torch.bool, device=device)
    values = list(modality)
    if len(values) != batch:
        raise ValueError(f"modality sequence must have {batch} values, got {len(values)}")
    flags = [m is None or normalize_modality(m) in entry.modalities for m in values]
    return torch.tensor(flags, dtype=torch.bool, device=device)


@torch.no_grad()
def perturb_image(
    images: torch.Tensor,
    name: str,
    severity: int | torch.Tensor | Sequence[int],
    generator: torch.Generator | None = None,
    modality: str | Sequence[str | None] | None = None,
) -> torch.Tensor:
    """Apply the image corruption ``name`` at ``severity``.

    Args:
        images: float ``[B, C, H, W]`` in [0, 1] (float16 / bfloat16 / float32 / float64),
            any device.
        name: a key of ``IMAGE_PERTURBATIONS`` (see ``list_image_perturbations()``).
        severity: int 1..5 for the whole batch, or a long tensor / sequence ``[B]`` (mixed
            severities); 0 leaves a sample unchanged.
        generator: optional ``torch.Generator`` for deterministic draws. It may live on
            another device than ``images`` (draws are made on the generator's device and
            copied); without one, torch's global RNG of the images' device is used.
        modality: ``None`` (apply to every sample), one modality for the batch, or one per
            sample (``None`` entries apply). For modality-tagged corruptions (``bias_field``:
            mri, ``ct_ring`` / ``ct_streak``: ct, ``xray_grid``: x-ray) samples of other
            modalities are returned unchanged; untagged corruptions ignore it. Use
            ``list_image_perturbations(modality)`` to pick the typical ones.

    Returns:
        ``[B, C, H, W]``, same dtype and device as ``images``, values in [0, 1]. Draws are
        the same for every severity, so with a fixed seed, sample ``b`` of a mixed-severity
        batch equals sample ``b`` of the whole batch perturbed at ``severity[b]``.
    """
    entry = IMAGE_PERTURBATIONS[name]
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a tensor [B, C, H, W]")
    if not images.dtype.is_floating_point:
        raise TypeError(f"images must be floating point in [0, 1], got {images.dtype}")
    batch = images.shape[0]
    sev = severity_tensor(severity, batch, images.device)
    active = sev > 0
    mask = _modality_mask(entry, modality, batch, images.device)
    if mask is not None:
        active = active & mask
    n_active = int(active.sum()) if batch else 0
    if n_active == 0:
        return images.clone()
    x = images.to(torch.float32)
    out = entry.fn(x, sev.clamp(min=1), generator).clamp_(0.0, 1.0)
    if n_active < batch:
        out = torch.where(active.view(batch, 1, 1, 1), out, x)
    return out.to(images.dtype)


def list_image_perturbations(modality: str | None = None) -> list[str]:
    """Registered image corruption names; with ``modality``, only those typical for it.

    Untagged corruptions are typical for every modality, so ``list_image_perturbations("ct")``
    is the generic ones plus ``ct_ring`` and ``ct_streak``.
    """
    return IMAGE_PERTURBATIONS.names(modality)
