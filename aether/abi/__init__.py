"""The agent ABI: a small, versioned protocol over a Unix socket (and the host's
virtio-serial port) through which agents, the shell and the host reach aetherd.

``protocol`` (frames, errors), ``server`` (connections on the event loop),
``identity`` (who is calling, from the kernel), ``methods`` (what a method is:
Method and the access levels), ``deferred`` (an answer that comes later),
``calls/`` (the namespaces, one module each, and the table of every method),
``worker`` (forked helpers for blocking work), ``resummarise`` (aetherd's own
summaries of compacted context).  The protocol itself is documented in docs/abi.md.
"""

VERSION = 1
