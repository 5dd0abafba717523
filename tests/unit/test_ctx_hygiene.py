"""Hygiene of the context store: a lean stdlib-only import, no deleted database files, lint."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = {"subprocess", "asyncio", "threading", "dataclasses", "typing", "logging", "inspect", "random",
         "tempfile", "contextlib", "argparse", "socket", "ctypes", "decimal", "uuid", "resource"}


def test_import_is_stdlib_only_and_lean():
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); before = set(sys.modules); "
            "import aether.ctx; print(' '.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    added = set(out.stdout.split())
    assert not added & HEAVY, sorted(added & HEAVY)
    outside = {m for m in added if not m.startswith("aether")} - {
        "sqlite3", "sqlite3.dbapi2", "_sqlite3", "json", "json.decoder", "json.scanner", "json.encoder",
        "_json", "hashlib", "_hashlib", "_blake2", "re", "re._casefix", "re._compiler", "re._constants",
        "re._parser", "_sre", "enum", "copyreg", "datetime", "_datetime", "collections", "_collections",
        "collections.abc", "_collections_abc", "functools", "_functools", "itertools", "keyword", "operator",
        "_operator", "reprlib", "types", "math", "time", "_struct", "struct", "_sha256", "_sha2",
        "os", "os.path", "posixpath", "genericpath", "stat", "_stat"}
    assert not outside, sorted(outside)


def test_no_code_deletes_database_files():
    """Deleting a hot -wal or -shm file corrupts the database (SQLite's howtocorrupt §1.3)."""
    for path in (REPO / "aether/ctx").glob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "unlink(" in line or "os.remove(" in line or "rmtree(" in line:
                assert path.name == "export.py" and "self.tmp" in line, f"{path.name}:{number}: {line}"


def test_synchronous_is_set_explicitly():
    text = (REPO / "aether/ctx/store.py").read_text()
    assert 'PRAGMA synchronous = FULL' in text and 'PRAGMA journal_mode = WAL' in text


def test_bench_script_lints():
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed in this Python's environment (make deps installs it)")
    out = subprocess.run([str(ruff), "check", "scripts/bench-ctx"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
