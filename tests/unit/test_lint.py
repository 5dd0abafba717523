"""Linters as tests: ruff over the Python, mypy over aether/, shellcheck over the shell scripts."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON_SCRIPTS = ["scripts/aetherctl", "scripts/bench-agents", "scripts/bench-ctx", "scripts/bench", "scripts/run-qemu", "scripts/build-image", "init/init",
                  "scripts/render-templates", "scripts/check-kernel-repro", "scripts/model-server", "scripts/model-engine",
                  "scripts/bench-llm", "scripts/import-graph", "scripts/bench-sdk"]
SHELL_SCRIPTS = ["scripts/setup-host", ".ci/run",
                 "board/board/aether/post-build.sh", "board/board/aether/post-image.sh"]


def test_ruff():
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed in this Python's environment (make deps installs it)")
    out = subprocess.run([str(ruff), "check", "aether", "scripts/aetherbuild", "tests", "examples", *PYTHON_SCRIPTS],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy():
    mypy = Path(sys.executable).with_name("mypy")
    if not mypy.exists():
        pytest.skip("mypy is not installed in this Python's environment (make deps installs it)")
    # mypy.ini says what is checked and what is not yet; its cache stays out of the tree
    out = subprocess.run([str(mypy), "--config-file", "mypy.ini", "--cache-dir", "/dev/null"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck, or make deps)")
    out = subprocess.run(["shellcheck", *SHELL_SCRIPTS], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
