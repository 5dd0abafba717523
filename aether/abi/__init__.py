"""The agent ABI: a small, versioned protocol over a Unix socket (and the host's
virtio-serial port) through which agents, the shell and the host reach aetherd.

``protocol`` (frames, errors), ``server`` (connections on the event loop),
``identity`` (who is calling, from the kernel), ``methods`` (the method table).
The protocol itself is documented in docs/abi.md.
"""

VERSION = 1
