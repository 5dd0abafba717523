"""Built-in agents: small programs aetherd runs like any other agent (forked,
in their own cgroup, as their own uid) that talk to the system only through the
ABI.  ``sysmon`` samples the machine and raises alerts; ``watch`` notifies when
a condition over the machine's state becomes true."""
