"""A deployed package has only the image's standard library: every module the examples (and the
SDK) import is aether's own, built into the interpreter, or shipped in the built image
(out/images/manifest.json; skipped without an image).  Modules a package needs beyond that
must be vendored (aetherctl pack)."""

import _imp
import ast
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "out" / "images" / "manifest.json"
STDLIB = "/usr/lib/python3.11/"


def imported(path):
    """Top-level module names a file imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def sources():
    for package in sorted((REPO / "examples").iterdir()):
        if (package / "agent.toml").exists():
            yield from (p for p in sorted(package.rglob("*.py")) if "tests" not in p.relative_to(package).parts)
    yield from sorted((REPO / "aether" / "sdk").glob("*.py"))


def test_every_import_of_an_example_and_the_sdk_is_in_the_image():
    if not MANIFEST.exists():
        pytest.skip("no built image (make image): out/images/manifest.json is missing")
    shipped = {f["path"] for f in json.loads(MANIFEST.read_text())["files"]}
    missing = []
    for path in sources():
        for name in imported(path):
            if name == "aether" or name in sys.builtin_module_names or _imp.is_frozen(name):
                continue
            if not {f"{STDLIB}{name}.pyc", f"{STDLIB}{name}/__init__.pyc"} & shipped and \
                    not any(p.startswith(f"{STDLIB}lib-dynload/{name}.") for p in shipped):
                missing.append(f"{path.relative_to(REPO)}: {name}")
    assert not missing, f"imports the image does not ship (vendor them, or use what ships): {missing}"


def test_the_examples_are_packages_with_tests():
    packages = [p for p in (REPO / "examples").iterdir() if (p / "agent.toml").exists()]
    assert len(packages) >= 2
    for package in packages:
        assert list((package / "tests").glob("test_*.py")), f"{package.name} has no tests"
