"""PID 1's own modules: nothing outside this package imports them.

``init`` (PID 1's main: the loop, the services, shutdown), ``boot`` (the boot
steps, each fatal or degraded), ``mounts``, ``datadisk`` (the data partition),
``power`` (reboot, poweroff, the ACPI button), ``statusfile`` (what PID 1 tells
the console and aetherd), ``services`` (its supervisor of services) and
``boottime`` (the boot timeline).  What PID 1 shares with aetherd (the loop, the
log, the reaper, spawning, the restart rules) lives at the top of ``aether``.

The kernel runs ``/init`` (init/init), which calls ``aether.pid1.init.main()``.
Lean: a fresh import loads only what tests/host/test_lean_imports.py allows.
"""
