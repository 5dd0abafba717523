"""An agent's saved state: one small JSON object in its home, replaced atomically.

The file is written to a new temporary name (``O_CREAT | O_EXCL | O_NOFOLLOW``, mode
0600) in the same directory, synced, renamed over the old one, and the directory
synced: a power cut leaves the old state or the new one, never half of either, and
a link planted at either name leads nowhere.  A state file that cannot be read
(not JSON, not an object) is moved aside to ``<name>.bad`` and the agent starts
from an empty state, saying so.  MAX_BYTES bounds what is saved: the home counts
against the agent's ``limits.disk``.
"""

import json
import os

from ..agent.layout import replace_durably

MAX_BYTES = 1 << 20


class StateError(Exception):
    """The state cannot be saved: too large, not JSON, or the home refused the write."""


def load(path, warn=print):
    """The saved state at ``path`` as a dict; {} when there is none or it is unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    except OSError as e:
        warn(f"state {path} cannot be opened ({e.strerror}); starting from an empty state")
        return {}
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    try:
        value = json.loads(data) if len(data) <= MAX_BYTES else None
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    try:
        os.replace(path, path + ".bad")
        kept = f"; it was kept as {path}.bad"
    except OSError:
        kept = ""
    warn(f"state {path} is not a JSON object of at most {MAX_BYTES} bytes; starting from an empty state{kept}")
    return {}


def save(path, state):
    """Write ``state`` (a JSON-serialisable dict) to ``path`` atomically and durably."""
    try:
        data = json.dumps(state, ensure_ascii=True, sort_keys=True, separators=(",", ":")).encode()
    except (TypeError, ValueError) as e:
        raise StateError(f"the state cannot be saved as JSON ({e}); keep only numbers, strings, "
                         "booleans, None, lists and dicts with string keys in it") from None
    if len(data) > MAX_BYTES:
        raise StateError(f"the state is {len(data)} bytes as JSON, more than an agent's state may be "
                         f"({MAX_BYTES}); keep large data in memories (remember) or files in the home")
    try:
        replace_durably(os.path.abspath(path), data, 0o600)
    except OSError as e:
        raise StateError(f"the state cannot be written to {path}: {e.strerror} (is the home full, "
                         "or over limits.disk?)") from None
