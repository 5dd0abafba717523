"""Test modules in directories that are not packages (tests/unit, tests/vm) are imported by their
basename, so two with the same name stop pytest from collecting either: keep them apart."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_outside_packages_share_a_basename():
    seen = {}
    for d in sorted(p for p in TESTS.iterdir() if p.is_dir() and not (p / "__init__.py").exists()):
        for f in d.glob("test_*.py"):
            assert f.name not in seen, f"{f.relative_to(TESTS)} and {seen[f.name]} share a name; rename one"
            seen[f.name] = f.relative_to(TESTS)
    assert "test_test_names.py" in seen
