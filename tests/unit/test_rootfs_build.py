"""The whole rootfs build: reproducible, no shell, loadable, runnable, described.

Two builds of a snapshot of the repository (tests/unit/conftest.py) take
about 20 s together; every test here shares them.
"""

import hashlib
import json
import stat
import struct

import pytest

from aetherbuild import cli, cpio, debs, elfdeps, manifest, rootfs, stdlib
from aetherbuild.log import BuildError

STDLIB = stdlib.STDLIB_DIR.lstrip("/")


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_builds_give_identical_initramfs(builds, build_epoch):
    first, second = builds
    assert first.archive != second.archive
    assert sha256(first.archive) == sha256(second.archive)
    assert manifest.dumps(manifest.build(first, build_epoch)) == \
        manifest.dumps(manifest.build(second, build_epoch))


def test_archive_is_legacy_lz4_with_fixed_owners_and_times(builds, image_members, build_epoch):
    assert builds[0].archive.name == "rootfs.cpio.lz4"
    assert builds[0].archive.read_bytes()[:4] == cpio.LZ4_LEGACY_MAGIC
    assert all((m.uid, m.gid, m.mtime) == (0, 0, build_epoch) for m in image_members)


def test_layout_follows_the_interfaces(image_root, image_members, repo_snapshot):
    modes = {m.name: m.mode for m in image_members}
    assert modes["init"] == 0o100755
    assert (image_root / "init").read_bytes() == (repo_snapshot / "init/init").read_bytes()
    for name, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"),
                         ("usr/bin/python3", "python3.11")):
        assert (image_root / name).readlink().as_posix() == target
    devices = {m.name: (m.mode, m.rdevmajor, m.rdevminor) for m in image_members
               if stat.S_ISCHR(m.mode)}
    assert devices == {"dev/console": (stat.S_IFCHR | 0o600, 5, 1),
                       "dev/null": (stat.S_IFCHR | 0o666, 1, 3),
                       "dev/urandom": (stat.S_IFCHR | 0o666, 1, 9)}
    for mount_point in rootfs.MOUNT_POINTS:
        assert (image_root / mount_point).is_dir() and not any((image_root / mount_point).iterdir())
    assert modes["tmp"] == 0o041777 and modes["root"] == 0o040700


def test_generated_configuration(image_root, repo_snapshot):
    os_release = (image_root / "etc/os-release").read_text()
    version = rootfs.aether_version(repo_snapshot)
    assert "NAME=AetherOS\n" in os_release and "ID=aetheros\n" in os_release
    assert f"VERSION_ID={version}\n" in os_release and "BUILD_ID=0123456789ab\n" in os_release
    defaults = (image_root / "etc/aether/defaults").read_text()
    assert "hostname = aether" in defaults.splitlines()
    assert not list(image_root.rglob("*.j2"))
    assert (image_root / "etc/passwd").read_text().startswith("root:x:0:0:")


def test_image_has_no_shell(image_root, builds):
    rootfs.check_no_shell(builds[0].entries)
    assert sorted(p.name for p in (image_root / "usr/bin").iterdir()) == ["python3", "python3.11"]
    names = {p.name for p in image_root.rglob("*")}
    assert not names & {"sh", "bash", "dash", "busybox", "coreutils", "ls", "cat"}


@pytest.mark.parametrize("path", ["usr/bin/sh", "usr/lib/busybox", "usr/sbin/ls", "usr/bin/env"])
def test_shell_guard_names_the_culprit(path):
    entries = [cpio.Entry(path, cpio.FILE, 0o755, data=b"")]
    with pytest.raises(BuildError, match=f"/{path}"):
        rootfs.check_no_shell(entries)


def elf_files(root):
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and elfdeps.is_elf(path):
            yield path


def test_every_elf_finds_its_libraries_inside_the_image(image_root):
    checked = 0
    for path in elf_files(image_root):
        image_path = "/" + path.relative_to(image_root).as_posix()
        info = elfdeps.read(path)
        if info.interp:
            assert elfdeps.is_elf(elfdeps.host_path(image_root, elfdeps.resolve(
                image_root, info.interp)[1])), f"{image_path}: no {info.interp}"
        for soname in info.needed:
            assert elfdeps.find_library(image_root, soname, info, image_path), \
                f"{image_path} needs {soname}, which is not in the image"
        checked += 1
    assert checked >= 4  # python3.11, libc, libm, the loader at least


@pytest.mark.parametrize("loader", [False, True], ids=["chroot", "image-loader"])
def test_image_python_imports_aether(image_root, in_image, repo_snapshot, loader):
    proc = in_image(image_root, "/usr/bin/python3.11", "-I", "-S", "-c",
                    "import aether; print(aether.__version__)", loader=loader)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == rootfs.aether_version(repo_snapshot)
    assert proc.stderr == ""  # no "Could not find platform libraries" from getpath


def test_every_shipped_stdlib_module_imports_in_the_image(image_root, in_image):
    code = """
import importlib, os, sys
base = "/usr/lib/python3.11"
names = []
for d, dirs, files in os.walk(base):
    dirs[:] = sorted(x for x in dirs if x not in ("aether", "__pycache__"))
    for f in sorted(files):
        rel = os.path.relpath(os.path.join(d, f), base)
        if f.endswith(".pyc"):
            name = rel[:-4].replace("/", ".").removesuffix(".__init__")
        elif f.endswith(".so"):
            name = f.split(".")[0]
        else:
            continue
        importlib.import_module(name)
        names.append(name)
print(len(names))
"""
    proc = in_image(image_root, "/usr/bin/python3.11", "-I", "-S", "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 10


def test_stdlib_is_sourceless_unchecked_hash_bytecode(image_root):
    lib = image_root / STDLIB
    sources = [p for p in lib.rglob("*.py") if "aether" not in p.relative_to(lib).parts]
    assert sources == []
    pycs = list(lib.rglob("*.pyc"))
    assert pycs and all(p.parent.name != "__pycache__" for p in pycs
                        if "aether" not in p.relative_to(lib).parts)
    for pyc in pycs:
        flags = struct.unpack("<I", pyc.read_bytes()[4:8])[0]
        assert flags == 0b01, f"{pyc} is not an unchecked-hash pyc"
    assert (lib / "os.pyc").exists() and (lib / "lib-dynload").is_dir()


def test_aether_ships_sources_and_cached_bytecode(image_root, repo_snapshot):
    pkg = image_root / STDLIB / "aether"
    for src in (repo_snapshot / "aether").glob("*.py"):
        assert (pkg / src.name).read_bytes() == src.read_bytes()
        assert (pkg / "__pycache__" / f"{src.stem}.cpython-311.pyc").exists()


def test_excluded_and_unused_modules_do_not_ship(image_root):
    lib = image_root / STDLIB
    shipped = {p.relative_to(lib).parts[0].removesuffix(".pyc") for p in lib.iterdir()}
    for name in ("test", "unittest", "doctest", "pydoc", "pydoc_data", "idlelib", "tkinter",
                 "ensurepip", "lib2to3", "turtledemo", "__phello__", "asyncio", "email"):
        assert name not in shipped
    # Frozen into the interpreter, so never read from a file (os is getpath's landmark).
    assert "stat.pyc" not in {p.name for p in lib.iterdir()}


def test_manifest_describes_packages_and_files(builds, build_epoch, tmp_path):
    image = builds[0]
    bz = tmp_path / "bzImage"
    bz.write_bytes(b"kernel")
    data = json.loads(manifest.dumps(manifest.build(image, build_epoch, manifest.kernel(bz))))
    assert data["source_date_epoch"] == build_epoch
    assert data["kernel"]["sha256"] == hashlib.sha256(b"kernel").hexdigest()
    assert data["kernel"]["size"] == 6 and data["kernel"]["config_key"] is None
    assert {p["name"] for p in data["packages"]} == set(debs.PACKAGES)
    for package in data["packages"]:
        assert debs.sha256_file(debs.cache() / package["filename"]) == package["sha256"]
    files = {f["path"]: f for f in data["files"]}
    assert len(files) == len(image.entries) == data["totals"]["entries"]
    python = files["/usr/bin/python3.11"]
    assert python["mode"] == "0755" and python["size"] > 1_000_000
    assert files["/usr/bin/python3"]["target"] == "python3.11"
    assert files["/dev/console"]["major"] == 5
    assert data["totals"]["compressed_bytes"] == image.archive.stat().st_size
    assert data["totals"]["uncompressed_bytes"] > data["totals"]["file_bytes"]


def test_manifest_finds_the_kernel_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AETHER_CACHE", str(tmp_path / "cache"))
    entry = tmp_path / "cache/kernel/0123456789abcdef"
    entry.mkdir(parents=True)
    (entry / "bzImage").write_bytes(b"a kernel")
    (entry / "version").write_text("linux-source-6.1 6.1.99-1\n")
    published = tmp_path / "bzImage"
    published.write_bytes(b"a kernel")
    assert manifest.kernel(published) == {
        "source_package": "linux-source-6.1", "source_version": "6.1.99-1",
        "config_key": "0123456789abcdef", "size": 8,
        "sha256": hashlib.sha256(b"a kernel").hexdigest()}


def test_unknown_package_asks_for_apt_update():
    with pytest.raises(BuildError) as err:
        debs.candidates(["aether-no-such-package"])
    assert "aether-no-such-package" in str(err.value) and "apt-get update" in err.value.hint


def test_version_is_parsed_not_imported(tmp_path):
    (tmp_path / "aether").mkdir()
    (tmp_path / "aether/__init__.py").write_text('raise SystemExit("imported!")\n'
                                                 '__version__ = "9.8.7"\n')
    assert rootfs.aether_version(tmp_path) == "9.8.7"
    (tmp_path / "aether/__init__.py").write_text("VERSION = 1\n")
    with pytest.raises(BuildError, match="__version__"):
        rootfs.aether_version(tmp_path)


def test_os_release_without_build_id(repo_snapshot):
    template = (repo_snapshot / "rootfs/etc/os-release.j2").read_text()
    text = rootfs.render(template, {"version": "1.2.3", "build_id": None})
    assert "VERSION_ID=1.2.3\n" in text and "BUILD_ID" not in text
    with pytest.raises(BuildError, match="undefined"):
        rootfs.render(template, {})


def test_source_date_epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "123")
    assert cli.source_date_epoch() == 123
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(BuildError, match="SOURCE_DATE_EPOCH"):
        cli.source_date_epoch()
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert cli.source_date_epoch() > 0


def fake_repo(tmp_path, package_code):
    (tmp_path / "aether").mkdir()
    (tmp_path / "aether/__init__.py").write_text(package_code)
    (tmp_path / "init").mkdir()
    (tmp_path / "init/init").write_text("import aether\n")
    return tmp_path


def shipped_names(selection):
    names = set()
    for source in selection.sources:
        rel = source.removeprefix(stdlib.STDLIB_DIR + "/").removesuffix(".py")
        names.add(rel.replace("/", ".").removesuffix(".__init__"))
    return names


def test_closure_of_a_lean_package_leaves_out_lazy_imports(debroot, tmp_path):
    repo = fake_repo(tmp_path, "import heapq\n")
    selection = stdlib.select(debroot, repo, repo / "init/init")
    names = shipped_names(selection)
    assert {"heapq", "encodings", "encodings.utf_8", "os"} <= names
    # heapq's __main__ block imports doctest; os is frozen but is the landmark;
    # stat is frozen and no landmark.
    assert not names & {"doctest", "unittest", "pdb", "stat", "importlib._bootstrap"}
    assert selection.included == () and selection.missing == ()


def test_own_imports_of_excluded_modules_ship_with_their_hard_imports(debroot, tmp_path):
    repo = fake_repo(tmp_path, "import doctest\nimport no_such_module_anywhere\n")
    selection = stdlib.select(debroot, repo, repo / "init/init")
    names = shipped_names(selection)
    assert "doctest" in names and "pdb" in names  # doctest does `import pdb` at top level
    assert "doctest" in selection.included and "pdb" in selection.included
    assert selection.missing == ("no_such_module_anywhere",)


def test_syntax_error_in_own_code_is_reported(debroot, tmp_path):
    repo = fake_repo(tmp_path, "def broken(:\n")
    with pytest.raises(BuildError, match="syntax error in AetherOS code:\n  .*__init__.py:1"):
        stdlib.select(debroot, repo, repo / "init/init")
