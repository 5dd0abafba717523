"""AetherOS: the Python userland that runs as PID 1 and everything it supervises.

Modules are named for the noun they own: ``init`` (PID 1's main), ``boot``
(the boot steps), ``services`` (supervision state machine), ``reaper``,
``spawn``, ``loop``, ``power``, ``mounts``, ``config``, ``console`` (the
placeholder console program) and so on.  PID 1's import path is kept lean:
see ``tests/host/test_lean_imports.py``.
"""

__version__ = "0.1.0"
