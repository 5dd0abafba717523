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


# Measured in the guest (-X importtime under TCG, issue 14): each of these cost PID 1 2-20 ms
# before its first prompt; the late boot steps import what they need after it.
NOT_BEFORE_THE_PROMPT = {"collections", "heapq", "struct", "importlib", "ctypes",
                         "aether.netif", "aether.pid1.datadisk"}


def test_the_way_to_the_first_prompt_leaves_out_what_can_wait():
    added = loaded_by("import aether.pid1.init, aether.pid1.boot, aether.console") - loaded_by("pass")
    assert not (added & NOT_BEFORE_THE_PROMPT), sorted(added & NOT_BEFORE_THE_PROMPT)
    assert len(added) <= 30, f"the first prompt's path imports {len(added)} modules: {sorted(added)}"
