"""The disk's file systems, each made as a plain file without root or mounting anything.

* root: squashfs of the staged tree (``mksquashfs``, uncompressed; device nodes
  from pseudo definitions, owners root, every time SOURCE_DATE_EPOCH);
* the EFI system partition: FAT32 (``mkfs.fat --invariant`` with a derived
  volume id, files added with mtools, which takes its times from
  SOURCE_DATE_EPOCH);
* data: an empty ext4 labelled AETHER-DATA (``mkfs.ext4`` with a derived UUID
  and hash seed, E2FSPROGS_FAKE_TIME, and board/board/aether/mke2fs.conf
  instead of the host's, so the host's defaults cannot change the result).
"""

import os
import subprocess
from pathlib import Path

from . import hosttools, paths
from .log import BuildError

# Uncompressed: under TCG, where the tests and benchmarks boot, decompressing what
# Python reads at start-up costs ~0.3 s (boot-to-ready 2.12 s with zstd, 1.81 s
# without: median of 4 BIOS boots each); the root holds ~15 MiB in a 256 MiB partition,
# and disk.qcow2 is compressed anyway.  (-no-compression in squashfs-tools 4.6.)
SQUASHFS_COMPRESSION = "none"
SQUASHFS_OPTIONS = ("-noI", "-noD", "-noF", "-noX")

# mke2fs's configuration for the data partition (shared with board/'s post-image.sh):
# explicit, so the file system does not depend on the host's /etc/mke2fs.conf.
MKE2FS_CONF = paths.REPO / "board" / "board" / "aether" / "mke2fs.conf"
# mkfs.ext4's options for it (post-image.sh passes the same).
EXT4_EXTENDED = "root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0"


def _run(cmd, what, env=None, hint=None, unset=()):
    cmd = [hosttools.which(cmd[0]), *map(str, cmd[1:])]
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(environ, **(env or {})))
    if proc.returncode != 0:
        raise BuildError(f"{what} failed ({proc.returncode}): {' '.join(cmd)}\n    "
                         + (proc.stderr.strip() or proc.stdout.strip()), hint=hint)
    return proc.stdout


def _blank(path, size):
    path = Path(path)
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def squashfs(tree, out, epoch, devices):
    """mksquashfs ``tree`` into ``out``; ``devices`` are (path, major, minor, mode)."""
    out = Path(out)
    out.unlink(missing_ok=True)
    pseudo = out.with_suffix(".pseudo")
    pseudo.write_text("".join(f"{path} c {mode:o} 0 0 {major} {minor}\n"
                              for path, major, minor, mode in devices))
    _run(["mksquashfs", tree, out, "-noappend", *SQUASHFS_OPTIONS, "-all-root",
          "-no-xattrs", "-mkfs-time", epoch, "-all-time", epoch, "-pf", pseudo,
          "-quiet", "-no-progress"],
         # mksquashfs refuses SOURCE_DATE_EPOCH together with the explicit times
         "mksquashfs", unset=("SOURCE_DATE_EPOCH",))
    return out


def _mtools_env(epoch):
    # mtools takes file and directory times from SOURCE_DATE_EPOCH; no user configuration.
    return {"SOURCE_DATE_EPOCH": str(epoch), "MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null"}


def fat(out, size, files, epoch, volume_id, label, hidden_sectors, work):
    """A FAT32 file system of ``size`` bytes holding ``files`` ({"/EFI/BOOT/x": bytes})."""
    out = _blank(out, size)
    # --invariant: no random or clock-based values; -h: the partition's start sector
    # (the "hidden sectors" a BIOS-era reader adds to find the file system).
    _run(["mkfs.fat", "--invariant", "-F", "32", "-s", "1", "-S", "512", "-i", volume_id,
          "-n", label, "-h", hidden_sectors, out], "mkfs.fat")
    env = _mtools_env(epoch)
    dirs = sorted({str(d) for path in files for d in Path(path).parents if str(d) != "/"},
                  key=lambda d: (d.count("/"), d))       # parents before children
    if dirs:
        _run(["mmd", "-i", out, *(f"::{d}" for d in dirs)], "mmd", env)
    staging = Path(work) / "fat-files"
    staging.mkdir(parents=True, exist_ok=True)
    for image_path, data in sorted(files.items()):
        src = staging / image_path.lstrip("/").replace("/", "_")
        src.write_bytes(data)
        os.utime(src, (epoch, epoch))
        _run(["mcopy", "-m", "-i", out, src, f"::{image_path}"], "mcopy", env)
    return out


def ext4(out, size, label, fs_uuid, hash_seed, epoch):
    """An empty ext4 of ``size`` bytes; inode tables and journal zeroed now, not at first mount."""
    out = _blank(out, size)
    _run(["mkfs.ext4", "-q", "-F", "-t", "ext4", "-L", label, "-U", fs_uuid, "-m", "1",
          "-E", f"hash_seed={hash_seed},{EXT4_EXTENDED}", out], "mkfs.ext4",
         env={"MKE2FS_CONFIG": str(MKE2FS_CONF), "E2FSPROGS_FAKE_TIME": str(epoch),
              "SOURCE_DATE_EPOCH": str(epoch)})
    return out
