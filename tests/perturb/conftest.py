"""Fixtures for the perturbation tests: structured images and a small report corpus."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F


def make_structured_images(batch: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """``[batch, channels, size, size]`` in [0, 1] with edges, gradients and texture.

    A flat image would hide blurs and resampling, so each image has a tilted gradient, a
    bright disc, a dark bar and a sinusoidal texture at random places.
    """
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(batch, 6, generator=g)
    coords = torch.linspace(0.0, 1.0, size)
    yy, xx = coords.view(1, size, 1), coords.view(1, 1, size)
    col = [p[:, i].view(batch, 1, 1) for i in range(6)]
    image = 0.2 + 0.4 * (col[0] * xx + (1 - col[0]) * yy)
    disc = (yy - col[1]) ** 2 + (xx - col[2]) ** 2 < (0.1 + 0.2 * col[3]) ** 2
    image = torch.where(disc, torch.full_like(image, 0.8), image)
    bar = ((yy - col[4]).abs() < 0.08) & ((xx - 0.5).abs() < 0.3)
    image = torch.where(bar, torch.full_like(image, 0.1), image)
    image = image + 0.05 * torch.sin(2 * math.pi * (6 * xx + 4 * yy) * (1 + col[5]))
    image = image.clamp(0, 1)[:, None].expand(batch, channels, size, size).contiguous()
    if channels == 3:  # give the channels different content
        image = image * torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)
    return image


def ssim_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """``1 - SSIM`` with a 7 x 7 box window (Wang et al. 2004 constants), batch mean."""
    k = 7
    mu_a, mu_b = F.avg_pool2d(a, k, 1), F.avg_pool2d(b, k, 1)
    var_a = F.avg_pool2d(a * a, k, 1) - mu_a**2
    var_b = F.avg_pool2d(b * b, k, 1) - mu_b**2
    cov = F.avg_pool2d(a * b, k, 1) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float((1 - ssim).mean())


@pytest.fixture(scope="session")
def images() -> torch.Tensor:
    """Six structured grayscale 64 x 64 images."""
    return make_structured_images(6, 1, 64)


@pytest.fixture(scope="session")
def make_images() -> Callable[..., torch.Tensor]:
    """Factory ``make_images(batch, channels, size, seed=0)`` of structured images."""
    return make_structured_images


@pytest.fixture(scope="session")
def ssim_dist() -> Callable[[torch.Tensor, torch.Tensor], float]:
    """``1 - SSIM`` distance function (batch mean)."""
    return ssim_distance


REPORTS = (
    "FINDINGS: PA and lateral views of the chest. The heart size is normal. There is a 2.5 cm "
    "opacity in the right upper lobe, likely consistent with pneumonia. No pleural effusion or "
    "pneumothorax. No acute fracture is seen. Two small nodules measure 4 mm.\n"
    "IMPRESSION: Right upper lobe consolidation, r/o pneumonia. Follow-up CXR recommended.",
    "Chest x-ray shows mild cardiomegaly. The lungs are clear. Pleural effusion is not seen. "
    "Negative for pneumothorax. Degenerative changes of the thoracic spine.",
    "CT of the abdomen w/ contrast: s/p cholecystectomy. The liver is normal in size. No "
    "evidence of free air. There is no hydronephrosis. A 12 mm hypodense lesion in the left "
    "kidney, likely a cyst. Three calcified granulomas.",
    "MRI brain: There is a 1.2 cm focus of restricted diffusion in the left MCA territory, "
    "consistent with acute infarct. No intracranial hemorrhage. The ventricles are normal. "
    "Impression: acute left MCA infarct; no hemorrhage.",
    "AP portable chest radiograph. ETT tip 4 cm above the carina. NGT in the stomach. "
    "Bilateral patchy opacities, worse at the bases, with small bilateral pleural effusions. "
    "No pneumothorax is identified. Stable cardiomegaly.",
    "COMPARISON: Prior study from 2 weeks ago. TECHNIQUE: Axial CT images of the chest "
    "without contrast. FINDINGS: Ground-glass opacity in the left lower lobe. No "
    "lymphadenopathy. The osseous structures are unremarkable. IMPRESSION: Ground-glass "
    "opacity, likely infectious. Follow-up CT in 3 months.",
)


@pytest.fixture(scope="session")
def reports() -> tuple[str, ...]:
    """Six radiology reports in different styles."""
    return REPORTS
