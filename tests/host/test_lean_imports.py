"""PID 1 is on the boot path: a fresh import of aether.pid1.init stays lean."""

import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = pytest.mark.host

FORBIDDEN = {"subprocess", "asyncio", "threading", "json", "re", "enum", "socket",
             "signal", "ctypes", "dataclasses", "argparse", "logging", "typing", "inspect",
             "random", "tempfile"}


def loaded_by(code):
    out = subprocess.run([sys.executable, "-I", "-S", "-c",
                          f"import sys; sys.path.insert(0, {str(REPO)!r}); {code}; "
                          "print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_init_import_is_lean():
    baseline = loaded_by("pass")
    added = loaded_by("import aether.pid1.init, aether.pid1.boot") - baseline
    assert not (added & FORBIDDEN), f"PID 1 imports {sorted(added & FORBIDDEN)}"
    # 39 modules before PID 1 moved into its own package; the package (aether.pid1, a
    # docstring) is the one more, and nothing else may be added
    assert len(added) < 41, f"PID 1 imports {len(added)} modules: {sorted(added)}"


def test_console_import_avoids_heavy_modules():
    added = loaded_by("import aether.console") - loaded_by("pass")
    assert not (added & (FORBIDDEN - {"re"})), sorted(added & FORBIDDEN)
