"""Run the project as ``python -m robust_mmr_pipeline run ...`` (the same as ``kedro run ...``;
Kedro's own form without ``run`` works too). This is what a launcher starts in every process:
``accelerate launch -m robust_mmr_pipeline run --pipelines pretrain``."""

import sys
from pathlib import Path
from typing import Any

from kedro.framework.cli.utils import find_run_command
from kedro.framework.project import configure_project


def main(*args: Any, **kwargs: Any) -> Any:
    package_name = Path(__file__).parent.name
    configure_project(package_name)
    if not args and sys.argv[1:2] == ["run"]:  # read like `kedro run`
        del sys.argv[1]
    kwargs["standalone_mode"] = not hasattr(sys, "ps1")
    return find_run_command(package_name)(*args, **kwargs)


if __name__ == "__main__":
    main()
