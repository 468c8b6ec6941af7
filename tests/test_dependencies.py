"""The install is what was tested: pyproject declares every import, the lock agrees with it.

* every third-party module imported by ``src/`` and ``benchmarks/`` belongs to a distribution
  declared in ``[project.dependencies]`` (``tests/``: dependencies + the ``dev`` extra);
* every declared requirement is pinned in ``requirements.lock`` at a version its specifier
  admits (torch excepted: the Makefile installs it from ``TORCH_SPEC``), and the Makefile's
  default ``TORCH_SPEC`` satisfies the declared torch range;
* the running environment holds exactly the locked versions (a fresh ``make install`` does).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCK = REPO_ROOT / "requirements.lock"
NOTEBOOKS_LOCK = REPO_ROOT / "requirements-notebooks.lock"
# Installed by the Makefile from TORCH_SPEC (CPU wheel or a CUDA build), not from the lock.
TORCH_PACKAGES = {"torch"}
FIRST_PARTY = {"robust_mmr_pipeline", "benchmarks"}


def _project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _requirements(*extras: str) -> list[Requirement]:
    project = _project()
    items = list(project["dependencies"])
    for extra in extras:
        items += project["optional-dependencies"][extra]
    return [Requirement(item) for item in items]


def _lock_pins(path: Path) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = Version(match.group(2))
    return pins


def _imported_modules(folders: list[str]) -> dict[str, set[str]]:
    """Top-level module name -> files importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    found.setdefault(top, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def _undeclared(folders: list[str], declared: set[str]) -> list[str]:
    local = {p.stem for folder in folders for p in (REPO_ROOT / folder).rglob("*.py")}
    dists = md.packages_distributions()
    problems = []
    for module, files in sorted(_imported_modules(folders).items()):
        if module in sys.stdlib_module_names or module in FIRST_PARTY or module in local:
            continue
        owners = {canonicalize_name(d) for d in dists.get(module, [])}
        if not owners:
            problems.append(f"{module} (imported by {sorted(files)[0]}) is not installed")
        elif not owners & declared:
            problems.append(
                f"{module} (imported by {sorted(files)[0]}) comes from {sorted(owners)}, "
                "which pyproject.toml does not declare"
            )
    return problems


def test_every_imported_package_is_declared() -> None:
    runtime = {canonicalize_name(r.name) for r in _requirements()}
    problems = _undeclared(["src", "benchmarks"], runtime)
    assert not problems, "add them to [project.dependencies], then `make lock`:\n" + "\n".join(
        problems
    )


def test_every_package_the_tests_import_is_declared() -> None:
    declared = {canonicalize_name(r.name) for r in _requirements("dev")}
    problems = _undeclared(["tests"], declared)
    assert not problems, "add them to the dev extra, then `make lock`:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("lock", "extras"), [(LOCK, ("dev",)), (NOTEBOOKS_LOCK, ("dev", "notebooks"))]
)
def test_lock_pins_every_declared_requirement_within_its_range(
    lock: Path, extras: tuple[str, ...]
) -> None:
    pins = _lock_pins(lock)
    problems = []
    for req in _requirements(*extras):
        name = canonicalize_name(req.name)
        if name in TORCH_PACKAGES:
            assert name not in pins, f"{lock.name} must not pin {name} (TORCH_SPEC installs it)"
            continue
        if name not in pins:
            problems.append(f"{req} is declared but not in {lock.name}")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req} is declared but {lock.name} pins {name}=={pins[name]}")
    assert not problems, "pyproject.toml and the lock disagree; run `make lock`:\n" + "\n".join(
        problems
    )


def test_default_torch_spec_satisfies_the_declared_range() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    spec = re.search(r"^TORCH_SPEC \?= (\S+)", makefile, re.MULTILINE)
    assert spec is not None
    pinned = Requirement(spec.group(1))
    (declared,) = [r for r in _requirements() if canonicalize_name(r.name) == "torch"]
    versions = [Version(s.version) for s in pinned.specifier if s.operator == "=="]
    assert versions and all(declared.specifier.contains(v) for v in versions)


def test_environment_matches_the_lock() -> None:
    """What runs the tests is what the lock says (catches a hand-installed upgrade)."""
    torch_build = md.version("torch")
    cpu_torch = "+cpu" in torch_build
    problems = []
    for name, version in _lock_pins(LOCK).items():
        if name == "torchvision" and not cpu_torch:
            continue  # a CUDA install takes torchvision from TORCH_SPEC as well
        try:
            installed = Version(md.version(name))
        except md.PackageNotFoundError:
            problems.append(f"{name}=={version} is locked but not installed")
            continue
        if installed != version:
            problems.append(f"{name}: locked {version}, installed {installed}")
    assert not problems, "the environment drifted from the lock; run `make install`:\n" + (
        "\n".join(problems)
    )
