"""Host-side tools that build the AetherOS image.

Each module owns one noun of the build: ``kernel`` (bzImage from Debian's
linux-source), ``debs`` (binary packages fetched with apt), ``elfdeps``
(shared-library closure via pyelftools), ``stdlib`` (the trimmed standard
library), ``cpio`` (deterministic newc archives), ``rootfs`` (assembling the
tree), ``manifest``; and ``qemu`` (booting the image: ``make run``, the VM tests and
the benchmark).  ``cli`` ties the build into stages.
"""
