#!/bin/sh
# Buildroot post-image script (BR2_ROOTFS_POST_IMAGE_SCRIPT): the AetherOS disk
# image, $BINARIES_DIR/disk.img, in the layout of genimage.cfg (the Debian build's
# scripts/aetherbuild/disklayout.py), from Buildroot's outputs:
#   bzImage, rootfs.squashfs, grub.img (GRUB i386-pc core image) and
#   efi-part/EFI/BOOT/bootx64.efi (GRUB x86_64-efi), and GRUB's boot.img from
#   its build directory.
# Steps: identifiers derived from the inputs; grub.cfg for both firmwares; the
# two writes grub-bios-setup would make (it needs a block device); an empty ext4
# for the data partition; genimage.  Run from Buildroot's top directory.
set -eu

BOARD_DIR=$(cd "$(dirname "$0")" && pwd)
BINARIES_DIR=${1:-${BINARIES_DIR:?not run by Buildroot: BINARIES_DIR is unset}}
EPOCH=${SOURCE_DATE_EPOCH:-0}

# Where things are on the disk (genimage.cfg): the BIOS boot partition at 1 MiB.
CORE_LBA=2048
DATA_SIZE=256M

# GRUB's offsets (grub-core/boot/i386/pc/boot.S, diskboot.S): boot.img's 64-bit
# sector of core.img, and the start of diskboot's first block list entry.
BOOT_KERNEL_SECTOR=92
DISKBOOT_LIST_START=500

die() {
	echo "post-image.sh: error: $*" >&2
	exit 1
}

need() {
	[ -f "$BINARIES_DIR/$1" ] || die "$BINARIES_DIR/$1 is missing ($2)"
}

# -- identifiers -----------------------------------------------------------------
# A digest of the inputs and the epoch; every GUID is a version-4-style UUID
# hashed from it and its purpose, so the same inputs give the same disk.
SEED=$(cat "$BINARIES_DIR/rootfs.squashfs" "$BINARIES_DIR/bzImage" \
	"$BOARD_DIR/grub.cfg" "$BOARD_DIR/mke2fs.conf" | sha256sum | cut -c1-64)
SEED=$(printf 'aetheros-disk %s %s\n' "$EPOCH" "$SEED" | sha256sum | cut -c1-64)

hex() {
	printf '%s %s\n' "$SEED" "$1" | sha256sum | cut -c1-32
}

guid() {
	h=$(hex "$1")
	variant=$(printf '%x' $(( (0x$(echo "$h" | cut -c17) & 3) | 8 )))
	echo "$(echo "$h" | cut -c1-8)-$(echo "$h" | cut -c9-12)-4$(echo "$h" | cut -c14-16)-$variant$(echo "$h" | cut -c18-20)-$(echo "$h" | cut -c21-32)"
}

# -- GRUB ------------------------------------------------------------------------

# 8 bytes, little-endian
le64() {
	n=$1
	i=0
	while [ "$i" -lt 8 ]; do
		printf '%b' "\\0$(printf '%03o' $((n % 256)))"
		n=$((n / 256))
		i=$((i + 1))
	done
}

u64_at() {
	od -An -tu8 -j "$2" -N 8 "$1" | tr -d ' '
}

patch64() {
	le64 "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

grub_bios() {
	boot_img=
	for f in "${BUILD_DIR:?not run by Buildroot: BUILD_DIR is unset}"/grub2-*/build-i386-pc/grub-core/boot.img; do
		[ -f "$f" ] && boot_img=$f && break
	done
	[ -n "$boot_img" ] || die "GRUB's boot.img is not in $BUILD_DIR/grub2-*/build-i386-pc (BR2_TARGET_GRUB2_I386_PC)"
	[ "$(u64_at "$boot_img" "$BOOT_KERNEL_SECTOR")" = 1 ] ||
		die "$boot_img does not have the layout this script knows (kernel sector at $BOOT_KERNEL_SECTOR)"
	[ "$(u64_at "$BINARIES_DIR/grub.img" "$DISKBOOT_LIST_START")" = 2 ] ||
		die "$BINARIES_DIR/grub.img does not start with the diskboot block list this script knows"
	head -c 440 "$boot_img" > "$BINARIES_DIR/boot-bios.img"
	patch64 "$BINARIES_DIR/boot-bios.img" "$BOOT_KERNEL_SECTOR" "$CORE_LBA"
	cp "$BINARIES_DIR/grub.img" "$BINARIES_DIR/grub-bios.img"
	patch64 "$BINARIES_DIR/grub-bios.img" "$DISKBOOT_LIST_START" $((CORE_LBA + 1))
}

grub_cfg() {
	mkdir -p "$BINARIES_DIR/efi-part/EFI/BOOT" "$BINARIES_DIR/efi-part/boot/grub"
	for cfg in "$BINARIES_DIR/efi-part/EFI/BOOT/grub.cfg" "$BINARIES_DIR/efi-part/boot/grub/grub.cfg"; do
		sed "s/@ROOT_PARTUUID@/$ROOT_PARTUUID/g" "$BOARD_DIR/grub.cfg" > "$cfg"
	done
}

# -- data partition --------------------------------------------------------------

data_ext4() {
	rm -f "$BINARIES_DIR/data.ext4"
	E2FSPROGS_FAKE_TIME=$EPOCH MKE2FS_CONFIG="$BOARD_DIR/mke2fs.conf" \
		mkfs.ext4 -q -F -t ext4 -L AETHER-DATA -U "$(guid ext4-uuid)" -m 1 \
		-E "hash_seed=$(guid ext4-hash-seed),root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0" \
		"$BINARIES_DIR/data.ext4" "$DATA_SIZE"
}

# -- main ------------------------------------------------------------------------

need bzImage "BR2_LINUX_KERNEL"
need rootfs.squashfs "BR2_TARGET_ROOTFS_SQUASHFS"
need grub.img "BR2_TARGET_GRUB2_I386_PC"
need efi-part/EFI/BOOT/bootx64.efi "BR2_TARGET_GRUB2_X86_64_EFI"

ROOT_PARTUUID=$(guid partition-root)
grub_bios
grub_cfg
data_ext4

sed -e "s/@DISK_GUID@/$(guid disk)/" \
	-e "s/@BIOS_PARTUUID@/$(guid partition-bios)/" \
	-e "s/@ESP_PARTUUID@/$(guid partition-esp)/" \
	-e "s/@ROOT_PARTUUID@/$ROOT_PARTUUID/" \
	-e "s/@DATA_PARTUUID@/$(guid partition-data)/" \
	-e "s/@FAT_VOLUME_ID@/$(hex fat-volume-id | cut -c1-8)/" \
	"$BOARD_DIR/genimage.cfg" > "$BINARIES_DIR/genimage.cfg"

support/scripts/genimage.sh -c "$BINARIES_DIR/genimage.cfg"
echo "post-image.sh: $BINARIES_DIR/disk.img (root partition $ROOT_PARTUUID)"
