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

from collections.abc import Sequence

import torch

from robust_mmr_pipeline.perturb.base import (
    Perturbation,
    PerturbationRegistry,
    normalize_modality,
    severity_tensor,
)
from robust_mmr_pipeline.perturb.image_kernels import (
    _bias_field,
    _brightness,
    _contrast,
    _ct_ring,
    _ct_streak,
    _downsample,
    _gamma,
    _gaussian_blur,
    _gaussian_noise,
    _jpeg,
    _motion_blur,
    _pixelate,
    _shot_noise,
    _speckle_noise,
    _xray_grid,
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
    JPEG_QUALITY,
    MOTION_BLUR_RADIUS,
    MOTION_BLUR_SIGMA,
    PIXELATE_FACTOR,
    SHOT_NOISE_PHOTONS,
    SPECKLE_NOISE_SIGMA,
    XRAY_GRID_AMPLITUDE,
)

# --------------------------------------------------------------------------------------------
# registry and public entry point
# --------------------------------------------------------------------------------------------

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


# Registered last: every entry, called, runs the validated public function above.
IMAGE_PERTURBATIONS = PerturbationRegistry("image", entry_point=perturb_image)
for _entry in _IMAGE_ENTRIES:
    IMAGE_PERTURBATIONS.register(_entry)
