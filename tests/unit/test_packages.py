"""Agent packages (aether/packages/format.py, vendor.py): pack is reproducible, and an archive
is refused, with a message naming what broke, for every way it can lie or escape."""

import hashlib
import io
import os
import tarfile
import zipfile

import pytest

from aether.packages import format as fmt
from aether.packages import vendor

AGENT = 'name = "hello"\nversion = "1.0.0"\nprogram = "hello:main"\n'
CODE = "def main(args):\n    return 0\n"


def make_pkg(root, manifest=AGENT, files=None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "agent.toml").write_text(manifest)
    for rel, text in (files if files is not None else {"hello.py": CODE}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_pack_is_reproducible_whatever_the_mtimes_owners_and_order(tmp_path):
    a = make_pkg(tmp_path / "a", files={"hello.py": CODE, "lib/util.py": "X = 1\n", "data.txt": "hi\n"})
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    out1.mkdir()
    out2.mkdir()
    p1, h1 = fmt.pack(str(a), str(out1))
    for path in a.rglob("*"):
        os.utime(path, (12345, 12345))
    os.chmod(a / "data.txt", 0o600)
    (a / "__pycache__").mkdir()
    (a / "__pycache__" / "hello.cpython-311.pyc").write_bytes(b"junk")
    (a / ".git").mkdir()
    (a / ".git" / "HEAD").write_text("ref")
    p2, h2 = fmt.pack(str(a), str(out2))
    assert os.path.basename(p1) == "hello-1.0.0.aether"
    assert open(p1, "rb").read() == open(p2, "rb").read()
    assert h1 == h2
    index, pm = fmt.verify_file(p1)
    assert index.sha256 == h1 and pm.label == "hello-1.0.0"
    assert sorted(index.files) == ["agent.toml", "data.txt", "hello.py", "lib/util.py"]
    with tarfile.open(p1) as tar:
        for m in tar.getmembers():
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")


def test_the_package_hash_changes_with_any_byte(tmp_path):
    a = make_pkg(tmp_path / "a")
    _, h1 = fmt.pack(str(a), str(tmp_path))
    (a / "hello.py").write_text(CODE + "# changed\n")
    _, h2 = fmt.pack(str(a), str(tmp_path))
    assert h1 != h2


@pytest.mark.parametrize("manifest, rule", [
    ('name = "hello"\nprogram = "hello:main"\n', "version"),
    ('name = "hello"\nversion = "1.0"\nprogram = "hello:main"\n', "version"),
    ('name = "hello"\nversion = "1.0.0"\nprogram = "/bin/sh"\n', "module:function"),
    ('name = "hello"\nversion = "1.0.0"\nprogram = "json:main"\n', "standard"),
    ('name = "hello"\nversion = "1.0.0"\nprogram = "other:main"\n', "neither other.py"),
    ('name = "hello"\nversion = "1.0.0"\nprogram = "hello:main"\ncolour = "red"\n', "unknown field"),
    ('name = "Hello"\nversion = "1.0.0"\nprogram = "hello:main"\n', "name"),
    ('name = "hello"\nversion = "1.0.0"\nprogram = "hello:main"\nrequires = ["x; rm -rf /"]\n', "requires"),
    ('name = "hello"\nversion = "1.0.0"\nprogram = "hello:main"\n[[[', "TOML"),
])
def test_a_bad_manifest_is_refused_at_pack_with_the_rule(tmp_path, manifest, rule):
    with pytest.raises(fmt.PackageError, match=rule):
        fmt.pack(str(make_pkg(tmp_path / "p", manifest)), str(tmp_path))


def test_links_and_odd_names_are_not_packed(tmp_path):
    a = make_pkg(tmp_path / "a")
    os.symlink("/etc/passwd", a / "passwd")
    with pytest.raises(fmt.PackageError, match="symbolic link"):
        fmt.pack(str(a), str(tmp_path))
    os.unlink(a / "passwd")
    (a / "bad name.py").write_text("")
    with pytest.raises(fmt.PackageError, match="bad name"):
        fmt.pack(str(a), str(tmp_path))


# -- hostile archives --------------------------------------------------------------------


def archive(files, members=None, index_hash=None, index=None):
    """An archive written by hand: the index of ``files`` ({path: bytes}), then ``members``
    ([(TarInfo kwargs, data)]; default: one per file)."""
    pm = fmt.parse_manifest(files["agent.toml"], "test") if index is None else None
    index = index if index is not None else fmt.index_bytes(
        pm, [(p, hashlib.sha256(d).hexdigest(), len(d), 0o644) for p, d in files.items()])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        fmt._add(tar, fmt.INDEX, index, 0o644)
        fmt._add(tar, fmt.INDEX_HASH, (index_hash or hashlib.sha256(index).hexdigest()).encode(), 0o644)
        for spec, data in (members if members is not None else
                           [({"name": "files/" + p}, d) for p, d in files.items()]):
            info = tarfile.TarInfo(spec.pop("name"))
            for k, v in spec.items():
                setattr(info, k, v)
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    buf.seek(0)
    return buf


GOOD = {"agent.toml": AGENT.encode(), "hello.py": CODE.encode()}


def test_a_hand_made_archive_that_follows_the_rules_unpacks(tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        index, pm = fmt.unpack(archive(GOOD), "t", dest_fd=fd)
    finally:
        os.close(fd)
    assert (dest / "hello.py").read_text() == CODE and pm.name == "hello"


@pytest.mark.parametrize("members, rule", [
    ([({"name": "files/agent.toml"}, GOOD["agent.toml"]), ({"name": "files/../hello.py"}, GOOD["hello.py"])],
     "relative"),
    ([({"name": "files/agent.toml"}, GOOD["agent.toml"]), ({"name": "/etc/hello.py"}, GOOD["hello.py"])],
     "outside files/"),
    ([({"name": "files/agent.toml"}, GOOD["agent.toml"]),
      ({"name": "files/hello.py", "type": tarfile.SYMTYPE, "linkname": "/etc/shadow"}, b"")], "symbolic link"),
    ([({"name": "files/agent.toml"}, GOOD["agent.toml"]),
      ({"name": "files/hello.py", "type": tarfile.LNKTYPE, "linkname": "files/agent.toml"}, b"")], "hard link"),
    ([({"name": "files/agent.toml"}, GOOD["agent.toml"]),
      ({"name": "files/hello.py", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, b"")], "device"),
    ([({"name": "files/agent.toml"}, GOOD["agent.toml"]), ({"name": "files/lib", "type": tarfile.DIRTYPE}, b"")],
     "directory"),
    ([({"name": "files/agent.toml"}, GOOD["agent.toml"]), ({"name": "files/hello.py"}, b"import os\n" + b"x" * 20)],
     "bytes, the index says"),
    ([({"name": "files/agent.toml"}, GOOD["agent.toml"]),
      ({"name": "files/hello.py"}, GOOD["hello.py"][:-1] + b"!")], "hash mismatch"),
    ([({"name": "files/agent.toml"}, GOOD["agent.toml"])], "lacks 1 file"),
    ([({"name": "files/agent.toml"}, GOOD["agent.toml"]), ({"name": "files/hello.py"}, GOOD["hello.py"]),
      ({"name": "files/hello.py"}, GOOD["hello.py"])], "twice"),
    ([({"name": "files/agent.toml"}, GOOD["agent.toml"]), ({"name": "files/hello.py"}, GOOD["hello.py"]),
      ({"name": "files/extra.py"}, b"")], "not in the package's index"),
])
def test_a_hostile_archive_is_refused_and_nothing_escapes(tmp_path, members, rule):
    dest = tmp_path / "d"
    dest.mkdir()
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(fmt.PackageError, match=rule):
            fmt.unpack(archive(GOOD, members), "t", dest_fd=fd)
    finally:
        os.close(fd)
    assert not (tmp_path / "hello.py").exists()
    assert not os.path.islink(dest / "hello.py")


def test_an_index_that_lies_is_refused(tmp_path):
    with pytest.raises(fmt.PackageError, match="hash mismatch"):
        fmt.unpack(archive(GOOD, index_hash="0" * 64), "t")
    bad = b'{"format": 1, "name": "hello", "version": "1.0.0", "files": [["../../etc/x", "' + b"0" * 64 + b'", 1, 420]]}'
    with pytest.raises(fmt.PackageError, match="relative"):
        fmt.unpack(archive(GOOD, index=bad), "t")
    with pytest.raises(fmt.PackageError, match="not a package archive"):
        fmt.unpack(io.BytesIO(b"\x1f\x8b" + os.urandom(2000)), "t")


# -- vendoring ---------------------------------------------------------------------------


def wheel(directory, name, pure=True):
    """A tiny wheel built here: pure Python, or one claiming compiled parts."""
    tag = "py3-none-any" if pure else "cp311-cp311-linux_x86_64"
    path = directory / f"{name}-1.0-{tag}.whl"
    info = f"{name}-1.0.dist-info"
    files = {f"{name}/__init__.py": f"VALUE = {name!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
             f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: {str(pure).lower()}\nTag: {tag}\n"}
    if not pure:
        files[f"{name}/_speed.cpython-311-x86_64-linux-gnu.so"] = "\x7fELF"
    record = "".join(f"{p},,\n" for p in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
        z.writestr(f"{info}/RECORD", record)
    return path


def test_requires_are_vendored_pure_and_reproducibly(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel(wheels, "tinydep")
    pkg = make_pkg(tmp_path / "p", AGENT + 'requires = ["tinydep==1.0"]\n')
    o1, o2 = tmp_path / "o1", tmp_path / "o2"
    o1.mkdir()
    o2.mkdir()
    p1, _ = vendor.pack_with_requires(str(pkg), str(o1), str(wheels), no_index=True)
    p2, _ = vendor.pack_with_requires(str(pkg), str(o2), str(wheels), no_index=True)
    assert open(p1, "rb").read() == open(p2, "rb").read()
    index, _ = fmt.verify_file(p1)
    assert "vendor/tinydep/__init__.py" in index.files
    assert not any("direct_url" in p or p.startswith("vendor/bin") for p in index.files)


def test_a_dependency_with_compiled_parts_is_refused_by_name(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel(wheels, "fastdep", pure=False)
    pkg = make_pkg(tmp_path / "p", AGENT + 'requires = ["fastdep==1.0"]\n')
    with pytest.raises(fmt.PackageError, match="fastdep.*compiled parts"):
        vendor.pack_with_requires(str(pkg), str(tmp_path), str(wheels), no_index=True)
    assert not list(tmp_path.glob("*.aether"))


def test_a_requirement_with_no_wheel_is_refused(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    pkg = make_pkg(tmp_path / "p", AGENT + 'requires = ["nosuchdep==9.9"]\n')
    with pytest.raises(fmt.PackageError, match="no pure-Python wheel"):
        vendor.pack_with_requires(str(pkg), str(tmp_path), str(wheels), no_index=True)


def test_baking_into_the_image_tree_is_reproducible(tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from aetherbuild import packages as bake
    repo = Path(__file__).resolve().parents[2]
    a, b = make_pkg(tmp_path / "a"), make_pkg(tmp_path / "b", AGENT.replace("hello", "other").replace(
        'program = "other:main"', 'program = "hello:main"'))
    t1, t2 = tmp_path / "t1", tmp_path / "t2"
    assert bake.bake(repo, t1, [a, b]) == ["hello-1.0.0.aether", "other-1.0.0.aether"]
    bake.bake(repo, t2, [a, b])
    for name in ("hello-1.0.0.aether", "other-1.0.0.aether"):
        assert (t1 / bake.IMAGE_DIR / name).read_bytes() == (t2 / bake.IMAGE_DIR / name).read_bytes()
    from aetherbuild.log import BuildError
    with pytest.raises(BuildError, match="cannot be packed"):
        bake.bake(repo, tmp_path / "t3", [tmp_path / "missing"])


@pytest.mark.parametrize("tar_format, what", [(tarfile.GNU_FORMAT, "GNU long name"),
                                              (tarfile.PAX_FORMAT, "pax header")])
def test_extension_headers_are_refused_before_tarfile_reads_them(tar_format, what):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tar_format) as tar:
        info = tarfile.TarInfo("files/" + "a" * 150)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    buf.seek(0)
    with pytest.raises(fmt.PackageError, match=what):
        fmt.unpack(buf, "t")
