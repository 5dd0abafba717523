"""AetherOS: the Python userland that runs as PID 1 and everything it supervises.

Where things live (each module is named for the noun it owns):

* ``pid1/``: only PID 1 imports these (its main, the boot steps, mounts, the
  data disk, power, its status file, its service supervisor);
* ``aetherd``: the agent daemon; ``agent/`` its supervisor of agents,
  ``abi/`` the socket API it serves, ``broker/`` the model-call broker,
  ``ctx/`` the context store, ``tools/`` the tools agents call;
* ``builtin/``: the image's own agents; ``shell/``: the intent shell;
* shared by PID 1 and aetherd, at the top: ``loop``, ``log``, ``reaper``,
  ``spawn``, ``syscalls``, ``sysinfo``, ``states``, ``restart``, ``config``,
  ``netif``, ``console``, ``localstatus`` and the other leaf modules.

PID 1's import path is kept lean: see ``tests/host/test_lean_imports.py``.
"""

__version__ = "0.1.0"
