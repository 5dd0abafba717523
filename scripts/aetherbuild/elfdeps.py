"""The shared-library closure of ELF files inside a staging root, read with pyelftools.

Paths here are image paths ("/usr/bin/python3.11"): absolute inside the
image, looked up under a staging root on the host.  Symlinks are followed the
way the image's loader will follow them, with absolute targets taken relative
to the root, never to the host.  The closure lists every path the loader
touches: the real files and the symlinks on the way to them (the soname links
such as libz.so.1 -> libz.so.1.2.13, and directory links such as /lib64).
"""

import dataclasses
import posixpath
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile

from .log import BuildError

# Where the image's loader looks for a soname (besides DT_RPATH/DT_RUNPATH):
# Debian's multiarch directories and the x86_64 legacy ones.  Debian 12 is
# merged-/usr, so /lib/... and /usr/lib/... are the same directory.
LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/lib64",
)

MAX_SYMLINKS = 40  # as the kernel's path walk


@dataclasses.dataclass(frozen=True)
class ElfInfo:
    """What the loader reads from one ELF file."""

    elfclass: int
    machine: str
    interp: str | None
    needed: tuple
    rpath: tuple
    runpath: tuple


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def read(path):
    """The ELF class, machine, PT_INTERP, DT_NEEDED, DT_RPATH and DT_RUNPATH of ``path``."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            interp, needed, rpath, runpath = None, [], [], []
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_INTERP":
                    interp = seg.get_interp_name()
                elif isinstance(seg, DynamicSegment):
                    for tag in seg.iter_tags():
                        kind = tag.entry.d_tag
                        if kind == "DT_NEEDED":
                            needed.append(tag.needed)
                        elif kind == "DT_RPATH":
                            rpath.extend(tag.rpath.split(":"))
                        elif kind == "DT_RUNPATH":
                            runpath.extend(tag.runpath.split(":"))
            return ElfInfo(elf.elfclass, elf["e_machine"], interp,
                           tuple(needed), tuple(rpath), tuple(runpath))
    except (ELFError, OSError) as e:
        raise BuildError(f"cannot read ELF file {path}: {e}") from e


def host_path(root, image_path):
    return Path(root) / image_path.lstrip("/")


def resolve(root, image_path):
    """Follow ``image_path`` inside ``root``: (symlinks crossed, final image path).

    Each symlink is resolved component by component, absolute targets from
    ``root``.  The final path need not exist; callers check that.
    """
    links = []
    done = "/"
    todo = [p for p in image_path.split("/") if p]
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            done = posixpath.dirname(done)
            continue
        current = posixpath.join(done, part)
        host = host_path(root, current)
        if not host.is_symlink():
            done = current
            continue
        if len(links) >= MAX_SYMLINKS:
            raise BuildError(f"too many levels of symlinks resolving {image_path} in {root}")
        links.append(current)
        target = str(host.readlink())
        base = "/" if target.startswith("/") else done
        todo = [p for p in target.split("/") if p] + todo
        done = base
    return links, done


def _expand(entry, origin):
    for token in ("$ORIGIN", "${ORIGIN}"):
        entry = entry.replace(token, origin)
    return entry


def search_dirs(info, elf_path):
    """Directories the loader searches for ``elf_path``'s DT_NEEDED, in its order."""
    origin = posixpath.dirname(elf_path)
    rpath = [] if info.runpath else [_expand(d, origin) for d in info.rpath if d]
    runpath = [_expand(d, origin) for d in info.runpath if d]
    return [*rpath, *runpath, *LIBRARY_DIRS]


def _compatible(root, image_path, info):
    host = host_path(root, image_path)
    if not host.is_file() or not is_elf(host):
        return False
    lib = read(host)
    return (lib.elfclass, lib.machine) == (info.elfclass, info.machine)


def find_library(root, soname, info, elf_path):
    """(symlinks crossed, real file) for ``soname`` as needed by ``elf_path``, or None."""
    if "/" in soname:
        candidates = [soname]
    else:
        candidates = [posixpath.join(d, soname) for d in search_dirs(info, elf_path)]
    for candidate in candidates:
        links, real = resolve(root, candidate)
        if _compatible(root, real, info):
            return links, real
    return None


def _unresolved(soname, elf_path):
    return BuildError(
        f"{elf_path} needs {soname}, and no staged package provides it",
        hint=f"add the Debian package that ships {soname} to debs.PACKAGES "
             f"(find it with: apt-file search {soname})")


def closure(root, elves):
    """Every image path the loader needs to run ``elves``: sorted list of paths.

    The list holds the ELF files themselves, their interpreter and every shared
    library they need, transitively, together with the symlinks leading to them.
    An unresolved soname is a BuildError naming the soname and the ELF needing it.
    """
    paths = set()
    todo = list(elves)
    seen = set()
    while todo:
        elf_path = todo.pop()
        links, real = resolve(root, elf_path)
        paths.update(links)
        paths.add(real)
        if real in seen:
            continue
        seen.add(real)
        info = read(host_path(root, real))
        if info.interp:
            todo.append(info.interp)
        for soname in info.needed:
            found = find_library(root, soname, info, real)
            if found is None:
                raise _unresolved(soname, elf_path)
            paths.update(found[0])
            todo.append(found[1])
    return sorted(paths)
