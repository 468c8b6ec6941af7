"""The image corruption kernels: ``x`` float32 ``[B, C, H, W]`` in [0, 1], ``severity`` long
``[B]`` in 1..5 -> ``[B, C, H, W]`` (the caller clamps). Registered in
:mod:`robust_mmr_pipeline.perturb.image`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from robust_mmr_pipeline.perturb.base import (
    random_tensor,
    table_lookup,
)
from robust_mmr_pipeline.perturb.image_ops import (
    BIAS_FIELD_AMPLITUDE,
    BRIGHTNESS_SHIFT,
    CONTRAST_FACTOR,
    CT_RING_AMPLITUDE,
    CT_RING_FRACTION,
    CT_STREAK_AMPLITUDE,
    CT_STREAK_COUNT,
    DOWNSAMPLE_FACTOR,
    GAMMA_DOWN,
    GAMMA_UP,
    GAUSSIAN_BLUR_SIGMA,
    GAUSSIAN_NOISE_SIGMA,
    JPEG_CHROMINANCE_TABLE,
    JPEG_LUMINANCE_TABLE,
    JPEG_QUALITY,
    MOTION_BLUR_RADIUS,
    MOTION_BLUR_SIGMA,
    PIXELATE_FACTOR,
    REFERENCE_SIDE,
    SHOT_NOISE_PHOTONS,
    SPECKLE_NOISE_SIGMA,
    XRAY_GRID_AMPLITUDE,
    Generator,
    _dct_matrix,
    _filter_per_sample,
    _jpeg_quant_tables,
    _motion_kernel,
    _per_sample,
    _poisson,
    _resample,
    _side_scale,
)


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
