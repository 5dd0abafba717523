"""The shared-library closure: what python3.11 needs, symlinks, search order, failures."""

import shutil

import pytest

from aetherbuild import elfdeps
from aetherbuild.log import BuildError

PYTHON = "/usr/bin/python3.11"
LIBDIR = "/usr/lib/x86_64-linux-gnu"


def test_python_needs_libc_and_the_loader(debroot):
    paths = elfdeps.closure(debroot, [PYTHON])
    assert PYTHON in paths
    assert f"{LIBDIR}/libc.so.6" in paths
    # PT_INTERP is /lib64/ld-linux-x86-64.so.2: the directory link, the loader's
    # own (absolute) link and the real file all ship.
    assert {"/lib64", "/usr/lib64/ld-linux-x86-64.so.2",
            f"{LIBDIR}/ld-linux-x86-64.so.2"} <= set(paths)
    # The soname link the loader opens and the file it points to.
    assert (debroot / LIBDIR.lstrip("/") / "libz.so.1").is_symlink()
    assert f"{LIBDIR}/libz.so.1" in paths
    assert any(p.startswith(f"{LIBDIR}/libz.so.1.") for p in paths)


def test_closure_holds_every_needed_soname_of_its_members(debroot):
    dynload = "/usr/lib/python3.11/lib-dynload"
    elves = [PYTHON, f"{dynload}/_sqlite3.cpython-311-x86_64-linux-gnu.so",
             f"{dynload}/_ctypes.cpython-311-x86_64-linux-gnu.so"]
    paths = set(elfdeps.closure(debroot, elves))
    for path in paths:
        host = elfdeps.host_path(debroot, path)
        if host.is_symlink() or host.is_dir() or not elfdeps.is_elf(host):
            continue
        info = elfdeps.read(host)
        for soname in info.needed:
            links, real = elfdeps.find_library(debroot, soname, info, path)
            assert real in paths and set(links) <= paths, (path, soname)
    assert f"{LIBDIR}/libsqlite3.so.0" in paths and f"{LIBDIR}/libffi.so.8" in paths


def test_closure_is_sorted_and_stable(debroot):
    first = elfdeps.closure(debroot, [PYTHON])
    assert first == sorted(first) == elfdeps.closure(debroot, [PYTHON])


def stage_without(debroot, tmp_path, missing):
    """A root with python3.11 and the libraries of its closure, except ``missing``."""
    root = tmp_path / "root"
    for path in elfdeps.closure(debroot, [PYTHON]):
        if path.rpartition("/")[2].startswith(missing):
            continue
        src, dest = elfdeps.host_path(debroot, path), elfdeps.host_path(root, path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dest.symlink_to(src.readlink())
        else:
            shutil.copy2(src, dest)
    return root


def test_missing_soname_fails_naming_it_and_its_user(debroot, tmp_path):
    root = stage_without(debroot, tmp_path, "libz.so")
    with pytest.raises(BuildError) as err:
        elfdeps.closure(root, [PYTHON])
    assert "libz.so.1" in str(err.value) and PYTHON in str(err.value)
    assert "debs.PACKAGES" in err.value.hint


def test_a_file_that_is_not_a_library_is_passed_over(debroot, tmp_path):
    root = stage_without(debroot, tmp_path, "libz.so")
    real = next(p for p in elfdeps.closure(debroot, [PYTHON]) if "libz.so.1." in p)
    # First search directory: not ELF.  Later one: the real library.
    (root / LIBDIR.lstrip("/") / "libz.so.1").write_text("not a library\n")
    (root / "usr/lib64").mkdir(parents=True, exist_ok=True)
    shutil.copy2(elfdeps.host_path(debroot, real), root / "usr/lib64/libz.so.1")
    assert "/usr/lib64/libz.so.1" in elfdeps.closure(root, [PYTHON])


def test_resolve_keeps_absolute_links_inside_the_root(tmp_path):
    (tmp_path / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (tmp_path / "usr/lib64").mkdir()
    (tmp_path / "lib").symlink_to("usr/lib")
    (tmp_path / "lib64").symlink_to("usr/lib64")
    (tmp_path / "usr/lib/x86_64-linux-gnu/ld.so").write_text("")
    (tmp_path / "usr/lib64/ld.so").symlink_to("/lib/x86_64-linux-gnu/ld.so")
    links, real = elfdeps.resolve(tmp_path, "/lib64/ld.so")
    assert links == ["/lib64", "/usr/lib64/ld.so", "/lib"]
    assert real == "/usr/lib/x86_64-linux-gnu/ld.so"


def test_resolve_handles_dotdot_and_refuses_loops(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/up").symlink_to("../b")
    (tmp_path / "b").write_text("")
    assert elfdeps.resolve(tmp_path, "/a/up") == (["/a/up"], "/b")
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(BuildError, match="too many levels of symlinks"):
        elfdeps.resolve(tmp_path, "/loop")


def info(rpath=(), runpath=()):
    return elfdeps.ElfInfo(2, "EM_X86_64", None, (), tuple(rpath), tuple(runpath))


def test_search_order_follows_the_loader():
    elf = "/opt/app/bin/tool"
    assert elfdeps.search_dirs(info(rpath=["$ORIGIN/../lib"]), elf)[0] == "/opt/app/bin/../lib"
    # DT_RUNPATH present: DT_RPATH is ignored, RUNPATH comes before the system dirs.
    dirs = elfdeps.search_dirs(info(rpath=["/r"], runpath=["${ORIGIN}/x"]), elf)
    assert "/r" not in dirs and dirs[0] == "/opt/app/bin/x"
    assert dirs[1:] == list(elfdeps.LIBRARY_DIRS)


def test_a_non_elf_file_is_a_clear_error(tmp_path):
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/python3.11").write_text("#!/bin/sh\n")
    with pytest.raises(BuildError, match="cannot read ELF file"):
        elfdeps.closure(tmp_path, [PYTHON])
