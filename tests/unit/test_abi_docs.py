"""Docs as tests: every ABI method and error code is documented in docs/abi.md."""

from pathlib import Path

from aether.abi.calls import table
from aether.abi.protocol import ERRORS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "abi.md").read_text()


def test_every_method_is_documented():
    missing = [name for name in table() if f"`{name}`" not in DOC]
    assert not missing, f"add these methods to docs/abi.md: {missing}"


def test_every_error_code_is_documented():
    missing = [code for code in ERRORS if f"`{code}`" not in DOC]
    assert not missing, f"add these error codes to docs/abi.md: {missing}"
