"""out/images/manifest.json: what the image is made of, byte for byte.

Every Debian package (name, version, architecture, sha256 and name of the
.deb), every initramfs entry (path, type, mode, and size and sha256, symlink
target or device numbers), the kernel (source package version, config key,
bzImage sha256 and size), SOURCE_DATE_EPOCH and the totals.  ``make disk``
adds ``disk``: the disk image and its qcow2 (size, sha256), the partition table
(every partition's GUIDs, place, content and its sha256, the files of the EFI
system partition), the boot loader images, the GRUB packages and the versions
of the host tools that made it.  Keys are sorted and nothing depends on the
clock, so the file is as reproducible as the image.
"""

import hashlib
import json
import subprocess
from pathlib import Path

from . import cpio, debs, paths

FORMAT = 1
# Debian packages of the host tools whose output lands in the initramfs.
ROOTFS_TOOLS = ("dpkg", "lz4")


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _file(entry):
    record = {"path": "/" + entry.path, "type": entry.kind, "mode": f"{entry.mode:04o}"}
    if entry.kind == cpio.FILE:
        record.update(size=len(entry.data), sha256=_sha256(entry.data))
    elif entry.kind == cpio.SYMLINK:
        record.update(target=entry.target)
    elif entry.kind == cpio.CHAR:
        record.update(major=entry.major, minor=entry.minor)
    return record


def _package(deb):
    return {"name": deb.name, "version": deb.version, "arch": deb.arch,
            "sha256": deb.sha256, "filename": deb.filename}


def _cache_entry(sha256):
    """The kernel cache directory whose bzImage has ``sha256``, if any."""
    root = paths.cache_dir() / "kernel"
    for candidate in sorted(root.glob("*/bzImage")):
        if _sha256(candidate.read_bytes()) == sha256:
            return candidate.parent
    return None


def kernel(bzimage, cache_entry=None):
    """The manifest's kernel record for ``bzimage``.

    ``cache_entry`` is kernel.build()'s directory; without it the kernel cache
    is searched for the same bzImage.  An unknown bzImage keeps its hash and
    size, with null source and config key.
    """
    data = Path(bzimage).read_bytes()
    digest = _sha256(data)
    entry = cache_entry or _cache_entry(digest)
    package = version = None
    if entry and (entry / "version").exists():
        # kernel.build() writes "<source package> <version>".
        package, _, version = (entry / "version").read_text().strip().partition(" ")
    return {"source_package": package, "source_version": version,
            "config_key": entry.name if entry else None, "sha256": digest, "size": len(data)}


def build(image, epoch, kernel_record=None):
    """The manifest of ``image`` (a rootfs.Image) as a dict."""
    files = [_file(e) for e in image.entries]
    return {
        "host_tools": host_tools(ROOTFS_TOOLS),
        "format": FORMAT,
        "source_date_epoch": epoch,
        "kernel": kernel_record,
        "packages": [_package(d) for d in sorted(image.debs, key=lambda d: d.name)],
        "files": files,
        "totals": {
            "entries": len(files),
            "file_bytes": sum(f.get("size", 0) for f in files if f["type"] == cpio.FILE),
            "stdlib_modules": image.modules,
            "uncompressed_bytes": image.uncompressed,
            "compressed_bytes": image.compressed,
        },
    }


def dumps(manifest):
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def file_records(entries):
    """The manifest's ``files`` list for archive entries (to compare a tree with a manifest)."""
    return [_file(e) for e in entries]


def host_tools(packages):
    """{package: version} of the host's Debian packages whose tools made the image."""
    versions = {}
    for package in sorted(set(packages)):
        proc = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                              capture_output=True, text=True)
        versions[package] = proc.stdout.strip() if proc.returncode == 0 else None
    return versions


def disk(d, images_dir, tools):
    """The manifest's ``disk`` record for a disk.Disk published in ``images_dir``."""
    raw, qcow = Path(images_dir) / "disk.img", Path(images_dir) / "disk.qcow2"
    return {
        "image": {"file": raw.name, "bytes": raw.stat().st_size, "sha256": _sha256_file(raw)},
        "qcow2": {"file": qcow.name, "bytes": qcow.stat().st_size, "sha256": _sha256_file(qcow)},
        "partition_table": "gpt",
        "disk_guid": d.ids.disk_guid,
        "kernel_cmdline": d.cmdline,
        "partitions": list(d.partitions),
        "boot": d.boot,
        "boot_packages": [_package(deb) for deb in sorted(d.boot_debs, key=lambda x: x.name)],
        "board_files": {str(f.relative_to(paths.REPO)): _sha256_file(f) for f in d.board_files},
        "host_tools": tools,
    }


_sha256_file = debs.sha256_file
