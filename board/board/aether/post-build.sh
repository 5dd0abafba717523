#!/bin/sh
# Buildroot post-build script (BR2_ROOTFS_POST_BUILD_SCRIPT), run after the
# packages and the rootfs/ overlay are in the target directory ($1) and before
# the file systems are made:
#  - renders the overlay's *.j2 templates (Buildroot copies them verbatim) with
#    the repository's scripts/render-templates and Buildroot's host Python;
#  - makes the mount points PID 1 expects (the root file system is read-only);
#  - removes GRUB's default config from the target: GRUB reads the ESP's.
set -eu

TARGET_DIR=${1:?usage: post-build.sh TARGET_DIR}
REPO=${BR2_EXTERNAL_AETHER_PATH:?not run by Buildroot: BR2_EXTERNAL_AETHER_PATH is unset}/..
PYTHON=${HOST_DIR:?not run by Buildroot: HOST_DIR is unset}/bin/python3

"$PYTHON" "$REPO/scripts/render-templates" "$TARGET_DIR"

for dir in proc sys dev run tmp var/lib/aether root; do
	mkdir -p "$TARGET_DIR/$dir"
done
chmod 1777 "$TARGET_DIR/tmp"
chmod 0700 "$TARGET_DIR/root"

rm -rf "$TARGET_DIR/boot/grub"
