"""Host-side tools that build the AetherOS image.

Each module owns one noun of the build: ``kernel`` (bzImage from Debian's
linux-source), ``debs`` (binary packages fetched with apt), ``elfdeps``
(shared-library closure via pyelftools), ``stdlib`` (the trimmed standard
library), ``cpio`` (deterministic newc archives), ``rootfs`` (assembling the
tree), ``manifest``; the disk image: ``disklayout`` (its partition table, a
leaf), ``fsimages`` (squashfs, FAT, ext4 as plain files), ``grub`` (the boot
loader for BIOS and UEFI), ``sparse`` and ``disk`` (assembling it); ``templates``
(the overlay's jinja2 files); and ``qemu`` and ``vm`` (booting the image: ``make
run``, the VM tests and the benchmark).  ``cli`` ties the build into stages.
"""
