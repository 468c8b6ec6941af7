"""DVC versioning: dvc.yaml mirrors the Kedro chain; repro, no-op, parameter change, push/pull.

The static checks read dvc.yaml, the catalog and the parameter files. The end-to-end test runs
real `dvc` commands (tiny `test` conf env) in a throw-away git repository holding a copy of
this one: tracked files plus untracked files git does not ignore, as a fresh clone would see.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from robust_mmr_pipeline.pipeline_registry import DEFAULT_CHAIN

REPO_ROOT = Path(__file__).resolve().parents[1]
PIPELINES_DIR = REPO_ROOT / "src" / "robust_mmr_pipeline" / "pipelines"
DVC_YAML = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
STAGES: dict[str, dict[str, Any]] = DVC_YAML["stages"]
UPSTREAM_OF_PRETRAIN = ("ingestion", "validation", "domain_split")


# --------------------------------------------------------------------------- helpers


def _entries(stage: dict[str, Any], *sections: str) -> dict[str, dict[str, Any]]:
    """``{path: flags}`` of a stage's outs / metrics / plots (a plain string has no flags)."""
    found: dict[str, dict[str, Any]] = {}
    for section in sections:
        for entry in stage.get(section, []):
            if isinstance(entry, str):
                found[entry] = {}
            else:
                ((path, flags),) = entry.items()
                found[path] = dict(flags or {})
    return found


def _outputs(stage: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _entries(stage, "outs", "metrics", "plots")


def _covers(declared: str, path: str) -> bool:
    return path == declared or path.startswith(declared.rstrip("/") + "/")


def _owners(path: str) -> list[str]:
    return [
        name for name, stage in STAGES.items() if any(_covers(o, path) for o in _outputs(stage))
    ]


def _catalog() -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for path in sorted((REPO_ROOT / "conf" / "base").glob("catalog*.yml")):
        entries.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return entries


def _registered_chain() -> list[str]:
    """The DEFAULT_CHAIN pipelines that exist (find_pipelines registers every such folder)."""
    return [name for name in DEFAULT_CHAIN if (PIPELINES_DIR / name / "pipeline.py").is_file()]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_hashes(root: Path, paths: list[str]) -> dict[str, str]:
    """sha256 of every regular file under ``paths`` (symlinks such as ``last`` are skipped)."""
    hashes: dict[str, str] = {}
    for rel in paths:
        top = root / rel
        if top.is_file():
            hashes[rel] = _sha256(top)
            continue
        for folder, _dirs, files in os.walk(top):
            for name in files:
                file = Path(folder) / name
                if not file.is_symlink():
                    hashes[file.relative_to(root).as_posix()] = _sha256(file)
    return hashes


# --------------------------------------------------------------------------- static checks


def test_one_stage_per_chain_pipeline_in_order() -> None:
    assert list(STAGES) == list(DEFAULT_CHAIN)
    for name, stage in STAGES.items():
        assert stage["cmd"] == f"kedro run --pipelines {name}"
        assert f"src/robust_mmr_pipeline/pipelines/{name}" in stage["deps"]
        # its own section, plus each key of another section its nodes read
        pipeline = importlib.import_module(f"robust_mmr_pipeline.pipelines.{name}")
        borrowed = sorted(
            key.removeprefix("params:")
            for key in pipeline.create_pipeline().inputs()
            if key.startswith("params:") and key.removeprefix("params:").split(".")[0] != name
        )
        assert stage["params"] == [
            {f"conf/base/parameters_{name}.yml": [name]},
            *({f"conf/base/parameters_{key.split('.')[0]}.yml": [key]} for key in borrowed),
        ]


def test_every_output_belongs_to_exactly_one_stage() -> None:
    declared = [path for stage in STAGES.values() for path in _outputs(stage)]
    for path in declared:
        assert len(_owners(path)) == 1, f"{path} overlaps: {_owners(path)}"
    # Metrics and plots are git-tracked (cache: false); every other output goes to the cache.
    for stage in STAGES.values():
        for path, flags in _entries(stage, "metrics", "plots").items():
            assert flags.get("cache") is False, path
        for path, flags in _entries(stage, "outs").items():
            assert flags.get("cache", True) is True, path
    assert _entries(STAGES["pretrain"], "outs")["data/06_models/pretrain"] == {"persist": True}
    for path in declared:
        assert not path.startswith(("mlflow", "mlartifacts", "mlruns")), path


@pytest.mark.parametrize("name", _registered_chain())
def test_stage_matches_its_pipeline_datasets(name: str) -> None:
    """Catalog files a pipeline writes are its stage's outs; files it reads are its deps."""
    module = importlib.import_module(f"robust_mmr_pipeline.pipelines.{name}")
    pipeline = module.create_pipeline()
    catalog = _catalog()
    stage = STAGES[name]
    for dataset in sorted(pipeline.all_outputs()):
        filepath = catalog.get(dataset, {}).get("filepath")
        if filepath:
            assert _owners(filepath) == [name], f"{dataset} ({filepath}): {_owners(filepath)}"
    for dataset in sorted(pipeline.inputs()):
        filepath = catalog.get(dataset, {}).get("filepath")
        if filepath:
            assert any(_covers(dep, filepath) for dep in stage["deps"]), f"{name}: {filepath}"
            assert _owners(filepath), f"{filepath} is read by {name} but written by no stage"
    for dep in stage["deps"]:
        assert dep.startswith("data/") or (REPO_ROOT / dep).exists(), dep


def test_folders_named_by_parameters_are_stage_outputs() -> None:
    """Paths the nodes write outside the catalog (parameters) are declared too."""
    params = {
        name: yaml.safe_load(
            (REPO_ROOT / "conf" / "base" / f"parameters_{name}.yml").read_text(encoding="utf-8")
        )[name]
        for name in ("ingestion", "validation", "pretrain")
    }
    for source in params["ingestion"]["sources"]:
        if source["root"].startswith("data/"):
            assert _owners(source["root"]) == ["ingestion"], source["root"]
    outs = _outputs(STAGES["pretrain"])
    assert params["pretrain"]["output_dir"] in outs
    assert params["pretrain"]["image_cache"]["cache_dir"] in outs
    reports = [p for p in _outputs(STAGES["validation"]) if p.startswith("data/08_reporting/")]
    assert {Path(p).parent.as_posix() for p in reports} == {params["validation"]["report_dir"]}


def test_no_catalog_entry_uses_kedro_versioning() -> None:
    """DVC versions the files; Kedro's timestamped versions would change every output path."""
    found = []
    for path in sorted((REPO_ROOT / "conf").glob("*/catalog*.yml")):
        if path.parent.name == "local":
            continue
        for name, entry in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items():
            if isinstance(entry, dict) and entry.get("versioned"):
                found.append(f"{path.relative_to(REPO_ROOT)}: {name}")
    assert not found, found


def test_dvc_config_and_ignore_files() -> None:
    from configobj import ConfigObj

    config = ConfigObj(str(REPO_ROOT / ".dvc" / "config"))
    assert config["core"]["analytics"] == "false"
    remote = config["core"]["remote"]
    assert remote == "localremote"
    url = config[f'remote "{remote}"']["url"]
    # Relative urls are resolved from .dvc/: the default remote is ../dvc-remote from the repo.
    assert (REPO_ROOT / ".dvc" / url).resolve() == (REPO_ROOT.parent / "dvc-remote").resolve()
    assert {"/cache", "/tmp", "/config.local"} <= set(
        (REPO_ROOT / ".dvc" / ".gitignore").read_text(encoding="utf-8").split()
    )
    dvcignore = (REPO_ROOT / ".dvcignore").read_text(encoding="utf-8").split()
    assert "__pycache__/" in dvcignore
    if (REPO_ROOT / ".git").exists():
        tracked = subprocess.run(
            ["git", "ls-files", ".dvc"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        assert not [p for p in tracked if p.startswith((".dvc/cache/", ".dvc/tmp/"))], tracked
        ignored = subprocess.run(
            ["git", "check-ignore", ".dvc/cache/files/md5/00/x", ".dvc/tmp/lock"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        assert ignored == [".dvc/cache/files/md5/00/x", ".dvc/tmp/lock"]


def _first_scalar_override(data: Any, prefix: str = "") -> str | None:
    """``key=value`` setting the first int or str parameter of ``data`` to its own value."""
    if isinstance(data, dict):
        for key, value in data.items():
            if "." in str(key):  # e.g. validation.text_length["pairs.text"]: no override path
                continue
            found = _first_scalar_override(value, f"{prefix}.{key}" if prefix else str(key))
            if found:
                return found
    elif isinstance(data, int) and not isinstance(data, bool):
        return f"{prefix}={data}"
    elif isinstance(data, str) and "'" not in data:
        return f"{prefix}='{data}'"
    return None


def _as_kedro_reads(path: Path) -> dict[str, Any]:
    """The file's sections as the run sees them: typed where a section has a dataclass."""
    import dataclasses

    from omegaconf import OmegaConf

    from robust_mmr_pipeline.params import PARAM_SCHEMAS, parse, schema_for

    data = OmegaConf.to_container(OmegaConf.load(path))
    return {
        section: dataclasses.asdict(parse(schema_for(section), value, section))
        if section in PARAM_SCHEMAS
        else value
        for section, value in data.items()
    }


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, id=p.name)
        for p in sorted((REPO_ROOT / "conf" / "base").glob("parameters_*.yml"))
    ],
)
def test_set_param_rewrite_keeps_what_kedro_reads(path: Path, tmp_path: Path) -> None:
    """`dvc exp run -S <file>:<key>=<value>` rewrites the whole file through DVC's YAML writer;
    the parameters the run reads must stay the same."""
    from dvc.utils.hydra import apply_overrides
    from omegaconf import OmegaConf

    copy = tmp_path / path.name
    shutil.copy2(path, copy)
    override = _first_scalar_override(OmegaConf.to_container(OmegaConf.load(path)))
    assert override, f"{path.name} has no int or str parameter to override"
    apply_overrides(copy, [override])
    if copy.read_bytes() == path.read_bytes():
        # already in DVC's YAML style: the writer did run, as another value shows
        probe = tmp_path / f"probe-{path.name}"
        shutil.copy2(path, probe)
        key, _, value = override.partition("=")
        value = value.strip("'")
        changed = f"{key}={int(value) + 1}" if value.isdigit() else f"{key}='{value}-x'"
        apply_overrides(probe, [changed])
        assert probe.read_bytes() != path.read_bytes()
    assert _as_kedro_reads(copy) == _as_kedro_reads(path)


# --------------------------------------------------------------------------- end to end


def _copy_worktree(destination: Path) -> Path:
    """Tracked + untracked-but-not-ignored files (no data outputs) in a new git repository."""
    listed = []
    for args in (["ls-files"], ["ls-files", "--others", "--exclude-standard"]):
        result = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            pytest.skip(f"{REPO_ROOT} is not a git checkout: {result.stderr.strip()}")
        listed += result.stdout.splitlines()
    for rel in sorted(set(listed)):
        source = REPO_ROOT / rel
        if not source.is_file() or (rel.startswith("data/") and source.name != ".gitkeep"):
            continue
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    git = ["git", "-c", "user.name=dvc-test", "-c", "user.email=dvc-test@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "--no-gpg-sign", "-m", "copy"]):
        subprocess.run([*git, *args], cwd=destination, check=True, capture_output=True)
    return destination


class _Dvc:
    """`dvc` in the copy, with the test conf env, telemetry off and no user/system config."""

    def __init__(self, repo: Path, tmp_path: Path) -> None:
        binary = Path(sys.executable).with_name("dvc")
        self.command = [str(binary)] if binary.is_file() else [sys.executable, "-m", "dvc"]
        self.repo = repo
        env = {
            **os.environ,
            "KEDRO_ENV": "test",
            "KEDRO_DISABLE_TELEMETRY": "1",
            "DO_NOT_TRACK": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DVC_NO_ANALYTICS": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "DVC_GLOBAL_CONFIG_DIR": str(tmp_path / "dvc-global"),
            "DVC_SYSTEM_CONFIG_DIR": str(tmp_path / "dvc-system"),
            "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache"),
            # The stages' `kedro` is the one installed beside this interpreter.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        # Let Python write __pycache__ into the dependency folders: .dvcignore must hide it.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env = env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.command, *args],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{output[-6000:]}"
        return result

    def __call__(self, *args: str) -> str:
        result = self.run(*args)
        return result.stdout + result.stderr

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout.strip() or "{}")

    def status(self, *targets: str) -> dict[str, Any]:
        """Out-of-date stages among ``targets`` and everything upstream (all without targets)."""
        return self.json("status", *(["--with-deps", *targets] if targets else []))


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.mark.slow
def test_repro_noop_param_change_and_push_pull(tmp_path: Path, mlflow_template_db: Path) -> None:
    chain = _registered_chain()
    stages = list(STAGES)[: len(chain)]
    assert stages == chain and "pretrain" in chain, f"chain built so far: {chain}"
    # The whole dvc.yaml once every stage's pipeline exists, else the stages built so far.
    targets = [] if stages == list(STAGES) else [stages[-1]]
    with_deps = ["--with-deps", *targets] if targets else []

    repo = _copy_worktree(tmp_path / "repo")
    shutil.copy2(mlflow_template_db, repo / "mlflow.db")  # MLflow's store, not a DVC output
    remote = tmp_path / "remote"
    dvc = _Dvc(repo, tmp_path)
    dvc("remote", "modify", "--local", "localremote", "url", str(remote))

    # (1) the chain from scratch, every stage in order
    assert _ran(dvc("repro", *targets)) == stages
    assert (repo / "dvc.lock").is_file()

    # (2) a second repro has nothing to do, even after byte-code appeared in the source folders
    # the stages depend on (an IDE, a test run or another Python version writes __pycache__)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "src"], cwd=repo, env=dvc.env, check=True
    )
    again = dvc("repro", *targets)
    assert _ran(again) == []
    assert "Data and pipelines are up to date." in again
    for name in stages:
        assert f"Stage '{name}' didn't change, skipping" in again

    # (3) a pre-training parameter re-runs pre-training (and what follows), nothing upstream
    assert dvc.status(*targets) == {}
    params = repo / "conf" / "base" / "parameters_pretrain.yml"
    text, count = re.subn(
        r"(?m)^(\s+seed:\s*)0(\s)", r"\g<1>1\2", params.read_text(encoding="utf-8")
    )
    assert count == 1, "expected one `seed: 0` (pretrain.trainer.seed)"
    params.write_text(text, encoding="utf-8")
    assert dvc.json("params", "diff") == {
        "conf/base/parameters_pretrain.yml": {
            "pretrain.trainer.seed": {"old": 0, "new": 1, "diff": 1}
        }
    }
    changed = dvc.status(*targets)
    assert "pretrain" in changed and not set(changed) & set(UPSTREAM_OF_PRETRAIN), changed
    assert {"changed deps": {params.relative_to(repo).as_posix(): {"pretrain": "modified"}}} in (
        changed["pretrain"]
    )
    rerun = dvc("repro", *targets)
    assert _ran(rerun) == stages[stages.index("pretrain") :]
    for name in UPSTREAM_OF_PRETRAIN:
        assert f"Stage '{name}' didn't change, skipping" in rerun
    assert dvc.status(*targets) == {}
    losses = "data/08_reporting/pretrain_losses.csv"
    plots = dvc.json("plots", "show", losses)
    assert "errors" not in plots, plots["errors"]
    (plot,) = plots["data"][losses]
    points = plot["content"]["data"]["values"]
    assert points and all({"step", "loss"} <= set(point) for point in points)

    # (4) push, lose every cached output and the cache, pull: the same bytes come back
    cached = [
        path
        for name in stages
        for path, flags in _entries(STAGES[name], "outs").items()
        if flags.get("cache", True)
    ]
    before = _tree_hashes(repo, cached)
    weights = sorted(
        p for p in before if re.match(r"data/06_models/pretrain/.+/model\.safetensors$", p)
    )
    assert "data/03_primary/images.parquet" in before and weights, sorted(before)
    dvc("push", *with_deps)
    assert any(p.is_file() for p in remote.rglob("*"))
    shutil.rmtree(repo / ".dvc" / "cache")
    for rel in cached:
        path = repo / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert set(dvc.status(*targets)) == set(stages)
    dvc("pull", *with_deps)
    assert _tree_hashes(repo, cached) == before
    assert dvc.status(*targets) == {}

    # Pulled checkpoints resume: without the `last` pointer the newest step folder is found.
    from robust_mmr_pipeline.engine.checkpoint import resolve_checkpoint

    latest = Path(weights[-1]).parent
    assert resolve_checkpoint(repo / latest.parent) == repo / latest
