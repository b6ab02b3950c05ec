"""The container image leaves rapport/stack/ out (deploy/Dockerfile): `rapport stack` then
says so in one line and exits 2 instead of a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_stack_command_without_the_stack_module_says_it_is_not_installed(
    tmp_path: Path,
) -> None:
    # As in the image: the rapport package without its stack package (python -S: no site-packages,
    # so the editable install's finder cannot bring the checkout's stack package back).
    shutil.copytree(
        REPO / "rapport",
        tmp_path / "rapport",
        ignore=shutil.ignore_patterns("stack", "__pycache__"),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "from rapport.cli import main; raise SystemExit(main())",
            "stack",
            "status",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("rapport: the local stack is not part of this installation")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
