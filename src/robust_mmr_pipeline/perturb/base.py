"""Shared pieces of the perturbation library: registry entries, severities, seeded randomness.

Every perturbation has five calibrated severities ``1..5``; severity ``0`` is accepted
everywhere as "leave unchanged", a convenience for batches where only some samples are
perturbed (e.g. the per-sample image-only / text-only / both choice of Robust-MMR).

Randomness
----------
Image and token perturbations draw every random number through :func:`random_tensor`, which
samples on the generator's own device and copies to the data's device when the two differ.
So a CPU ``torch.Generator`` works with CUDA tensors (the draws are made on the CPU: slower,
but bit-identical draws on every device, which makes perturbed evaluation sets reproducible
across machines), and a CUDA generator works with CUDA tensors at full speed. Without a
generator, torch's global RNG of the data's device is used (what the training step wants, so
that a checkpointed RNG state makes resume exact). Each perturbation draws the same random
tensors whatever the severity, so with a fixed seed the severities differ only through their
parameters (this is what makes severity monotonic sample by sample, not only on average).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
MAX_SEVERITY = 5

PerturbationKind = Literal["image", "text"]

# Canonical modality tags (the values the sources write into ``images.modality``) and aliases.
MODALITY_ALIASES: dict[str, str] = {
    "ct": "ct",
    "cta": "ct",
    "computed tomography": "ct",
    "mri": "mri",
    "mr": "mri",
    "mra": "mri",
    "magnetic resonance": "mri",
    "x-ray": "x-ray",
    "xray": "x-ray",
    "x ray": "x-ray",
    "xr": "x-ray",
    "cr": "x-ray",
    "dx": "x-ray",
    "cxr": "x-ray",
    "radiograph": "x-ray",
    "radiography": "x-ray",
}


def normalize_modality(value: str) -> str:
    """Map a modality name to its canonical tag: ``"CT"`` -> ``"ct"``, ``"X-Ray"`` -> ``"x-ray"``.

    Unknown names are returned lower-cased and stripped, so new modalities still compare equal
    to themselves.
    """
    key = " ".join(value.strip().lower().replace("_", " ").split())
    return MODALITY_ALIASES.get(key, key)


@dataclass(frozen=True, eq=False)
class Perturbation:
    """One registry entry.

    Attributes:
        name: registry key, used in configs and manifests.
        kind: ``"image"`` or ``"text"``.
        fn: the low-level kernel. Image kernels: ``fn(x, severity, generator) -> Tensor`` with
            ``x`` float32 ``[B, C, H, W]`` in [0, 1], ``severity`` long ``[B]`` in 1..5 on
            ``x``'s device; the result may leave [0, 1] (the caller clamps). Text kernels:
            ``fn(text, severity, rng) -> str`` with ``severity`` in 1..5 and a seeded
            ``random.Random``. Call the entry itself (or ``perturb_image`` / ``perturb_text``)
            for the validated public behaviour.
        description: one line on what it simulates.
        severity_table: parameter name -> its five values for severities 1..5.
        convention: where the table comes from (ImageNet-C, CIFAR-10-C, MedMNIST-C, ours ...).
        modalities: canonical modality tags the artefact is typical for (image entries only);
            ``None`` means any modality.
        entry_point: the kind's validated public function (``perturb_image`` /
            ``perturb_text``), set by the registry the entry is registered in.
    """

    name: str
    kind: PerturbationKind
    fn: Callable[..., Any]
    description: str
    severity_table: Mapping[str, tuple[Any, ...]]
    convention: str
    modalities: tuple[str, ...] | None = None
    entry_point: Callable[..., Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for param, values in self.severity_table.items():
            if len(values) != MAX_SEVERITY:
                raise ValueError(
                    f"{self.name}: severity table {param!r} has {len(values)} values, "
                    f"expected {MAX_SEVERITY}"
                )
        if self.kind == "text" and self.modalities is not None:
            raise ValueError(f"{self.name}: only image perturbations carry a modalities tag")

    def applies_to(self, modality: str | None) -> bool:
        """Whether the perturbation is typical for ``modality`` (always true when untagged)."""
        if self.modalities is None or modality is None:
            return True
        return normalize_modality(modality) in self.modalities

    def severity_row(self, severity: int) -> dict[str, Any]:
        """The parameters of one severity (1..5), e.g. ``{"sigma": 0.08}``."""
        check_int_severity(severity, allow_zero=False)
        return {param: values[severity - 1] for param, values in self.severity_table.items()}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Apply with the public, validated behaviour of ``perturb_image`` / ``perturb_text``."""
        if self.entry_point is None:
            raise TypeError(
                f"{self.kind} perturbation {self.name!r} is not registered: call its kernel "
                "(.fn) or register it in a registry that has an entry point."
            )
        return self.entry_point(args[0], self.name, *args[1:], **kwargs)


@dataclass
class PerturbationRegistry(Mapping[str, Perturbation]):
    """Ordered name -> :class:`Perturbation` mapping whose lookup errors list the known names."""

    kind: PerturbationKind
    # the kind's validated public function, given to every entry registered here (the kind
    # module passes it, so this module never imports the kind modules)
    entry_point: Callable[..., Any] | None = None
    _entries: dict[str, Perturbation] = field(default_factory=dict)

    def register(self, entry: Perturbation) -> Perturbation:
        """Add ``entry`` (with this registry's entry point); its kind must match and its name
        must be new. Returns the entry as registered."""
        if entry.kind != self.kind:
            raise ValueError(f"{entry.name} is a {entry.kind} perturbation, not {self.kind}")
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} perturbation {entry.name!r} is registered twice")
        if entry.entry_point is None and self.entry_point is not None:
            entry = dataclasses.replace(entry, entry_point=self.entry_point)
        self._entries[entry.name] = entry
        return entry

    def __getitem__(self, name: str) -> Perturbation:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} perturbation {name!r}; known: {', '.join(self._entries)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self, modality: str | None = None) -> list[str]:
        """Registered names in definition order, optionally only those typical for a modality."""
        return [name for name, e in self._entries.items() if e.applies_to(modality)]


def check_int_severity(severity: object, allow_zero: bool = True) -> int:
    """Validate a Python severity: an integer in 1..5 (or 0 = unchanged when allowed)."""
    low = 0 if allow_zero else 1
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral):
        raise TypeError(f"severity must be an int in {low}..{MAX_SEVERITY}, got {severity!r}")
    value = int(severity)
    if not low <= value <= MAX_SEVERITY:
        raise ValueError(f"severity must be in {low}..{MAX_SEVERITY}, got {value}")
    return value


def severity_tensor(
    severity: int | torch.Tensor | Sequence[int], batch: int, device: torch.device
) -> torch.Tensor:
    """Broadcast a severity to a long tensor ``[batch]`` on ``device``, validated in 0..5.

    Accepts an int, a 0-d or ``[batch]`` integer tensor, or a sequence of ints. Checking a
    tensor's range reads one flag back from the device (a host sync).
    """
    if isinstance(severity, torch.Tensor):
        if severity.dtype.is_floating_point or severity.dtype.is_complex:
            raise TypeError(f"severity tensor must be integer (long), got {severity.dtype}")
        if severity.dtype == torch.bool:
            raise TypeError("severity tensor must be integer (long), got torch.bool")
        sev = severity.to(device=device, dtype=torch.long)
        if sev.dim() == 0:
            sev = sev.expand(batch)
        if sev.shape != (batch,):
            raise ValueError(f"severity tensor must have shape [{batch}], got {list(sev.shape)}")
        if bool(((sev < 0) | (sev > MAX_SEVERITY)).any()):
            raise ValueError(f"severity values must be in 0..{MAX_SEVERITY}")
        return sev
    if isinstance(severity, Sequence) and not isinstance(severity, str):
        values = [check_int_severity(s) for s in severity]
        if len(values) != batch:
            raise ValueError(f"severity sequence must have {batch} values, got {len(values)}")
        return torch.tensor(values, dtype=torch.long, device=device)
    value = check_int_severity(severity)
    return torch.full((batch,), value, dtype=torch.long, device=device)


def table_lookup(
    values: Sequence[float], severity: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Per-sample parameter ``[B]`` from a 5-value table; severity 0 reads severity 1's value."""
    table = torch.tensor(values, dtype=dtype, device=severity.device)
    return table[(severity - 1).clamp(min=0)]


def random_tensor(
    kind: Literal["rand", "randn", "randint"],
    shape: Sequence[int],
    device: torch.device,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    high: int = 0,
) -> torch.Tensor:
    """Draw on the generator's device (or ``device`` without one), then move to ``device``.

    ``kind``: ``rand`` (uniform [0, 1)), ``randn`` (standard normal) or ``randint``
    (uniform integers in ``[0, high)``, long).
    """
    source = generator.device if generator is not None else device
    size = tuple(int(s) for s in shape)
    if kind == "rand":
        out = torch.rand(size, generator=generator, device=source, dtype=dtype)
    elif kind == "randn":
        out = torch.randn(size, generator=generator, device=source, dtype=dtype)
    elif kind == "randint":
        out = torch.randint(0, high, size, generator=generator, device=source, dtype=torch.long)
    else:
        raise ValueError(f"unknown random kind {kind!r}")
    return out if out.device == device else out.to(device)
