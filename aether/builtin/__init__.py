"""Built-in agents: small programs aetherd runs like any other agent (forked,
in their own cgroup, as their own uid) that talk to the system only through the
ABI.  ``sysmon`` samples the machine and raises alerts; ``metrics`` the readings
they share; ``watch`` notifies when a condition over the machine's state becomes
true; ``record`` samples a reading every so often; ``goal`` works toward a goal
with the model; ``drill`` and ``intruder`` exist for the tests.  A manifest names
one as ``aether.builtin.<module>:main`` (the old ``aether.agents.`` still loads)."""
