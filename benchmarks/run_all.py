"""`make bench`: run every benchmarks/bench_*.py script and gather their JSON into one file.

Each script is a standalone program taking ``--out PATH`` (its own JSON result); this runner
starts them one after another in fresh interpreters (so thread settings and imports do not
leak between benchmarks) and writes the combined results plus machine facts to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine_facts() -> dict[str, object]:
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/08_reporting/benchmarks.json"))
    parser.add_argument("--only", nargs="*", default=None, help="names like synthrad perturb")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"machine": machine_facts(), "benchmarks": {}}
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if args.only and name not in args.only:
            continue
        out = args.out.with_name(f"bench_{name}.json")
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        proc = subprocess.run([sys.executable, str(script), "--out", str(out)], check=False)
        entry: dict[str, object] = {"seconds": round(time.perf_counter() - started, 1)}
        if proc.returncode == 0 and out.is_file():
            entry["result"] = json.loads(out.read_text())
        else:
            entry["error"] = f"exit code {proc.returncode}"
            failed.append(name)
        results["benchmarks"][name] = entry
    args.out.write_text(json.dumps(results, indent=2))
    print(f"Benchmarks written to {args.out}" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
