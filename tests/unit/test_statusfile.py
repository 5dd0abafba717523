"""PID 1's small JSON encoder agrees with the json module."""

import json

import pytest
from hypothesis import given, strategies as st

from aether.pid1 import statusfile

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20)


@given(values)
def test_round_trips_through_json(value):
    assert json.loads(statusfile.encode(value)) == value


def test_rejects_other_types():
    with pytest.raises(TypeError, match="cannot encode set"):
        statusfile.encode({1, 2})


def test_write_is_atomic_and_readable(tmp_path):
    path = tmp_path / "s.json"
    statusfile.write(str(path), {"a": [1, "x\n"]})
    assert json.loads(path.read_text()) == {"a": [1, "x\n"]}
    assert not (tmp_path / "s.json.tmp").exists()
