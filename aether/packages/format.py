"""The agent package and its archive, ``NAME-VERSION.aether``.

A package directory holds ``agent.toml`` (an agent manifest, aether/agent/manifest.py,
plus ``version = "X.Y.Z"`` and optional ``requires = ["name==1.2", ...]``) and the
agent's Python code; ``program = "module:function"`` names a module of the package.

The archive is a plain (uncompressed) POSIX tar, made the same way every time:

    PACKAGE            JSON index: format, name, version, requires, files [[path, sha256, size, mode]]
    PACKAGE.sha256     the package's own hash: sha256 of PACKAGE, hex, newline
    files/<path>...    every file, sorted by path; mtime 0, uid/gid 0, no owner names,
                       mode 0644 (0755 if executable in the directory)

No compression, so no gzip timestamp and no dependence on a zlib version: the same
directory gives the same bytes on any machine.  The hashes are integrity, not
authenticity: deploying is for the privileged only (docs/security.md).

Reading (``unpack``) trusts nothing: every member must be a regular file named in the
index, under ``files/``, with a clean relative path (no ``/`` at the start, no ``..``,
no hidden or odd characters), its size and sha256 those of the index, each once; links,
devices, directories and extra members are refused; counts and sizes are bounded.
Standard library only: the host packs with it, aetherd unpacks with it.
"""

import hashlib
import io
import json
import os
import re
import stat
import sys
import tarfile
import tomllib

from ..agent import manifest as _manifest

FORMAT = 1
INDEX, INDEX_HASH, FILES = "PACKAGE", "PACKAGE.sha256", "files/"
SUFFIX = ".aether"
MANIFEST = "agent.toml"
VENDOR = "vendor"
MAX_FILES = 5000
MAX_PATH = 200                 # characters of a file's path in the package
MAX_DEPTH = 16
MAX_INDEX = 4 << 20            # bytes of the PACKAGE index
MAX_MANIFEST = 1 << 20
SKIPPED = ("__pycache__",)     # directories never packed (and hidden ones, ".*")
PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,99}\Z")
VERSION = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\Z")
REQUIRE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}(\[[A-Za-z0-9,._-]{1,100}\])?"
                     r"(\s*(==|>=|<=|~=|!=|<|>)\s*[A-Za-z0-9.*+!-]{1,40})?"
                     r"(\s*,\s*(==|>=|<=|~=|!=|<|>)\s*[A-Za-z0-9.*+!-]{1,40}){0,4}\Z")
CHUNK = 1 << 16


class PackageError(ValueError):
    """A package or archive breaks a rule; the message names the file, the rule and the fix."""


# -- the manifest ------------------------------------------------------------------------


class PackageManifest:
    """agent.toml of a package: ``manifest`` (an aether.agent.manifest.Manifest), version, requires."""

    def __init__(self, manifest, version, requires):
        self.manifest, self.version, self.requires = manifest, version, requires
        self.name = manifest.name

    @property
    def label(self):
        return f"{self.name}-{self.version}"


def parse_manifest(data, origin, paths=None):
    """Check agent.toml (bytes): the agent manifest, version, requires, and (given the
    package's file paths) that ``program`` names a module of the package."""
    if len(data) > MAX_MANIFEST:
        raise PackageError(f"{origin}: larger than {MAX_MANIFEST} bytes")
    try:
        fields = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise PackageError(f"{origin}: not valid TOML: {e}") from None
    version = fields.pop("version", None)
    requires = fields.pop("requires", [])
    if not isinstance(version, str) or not VERSION.match(version):
        raise PackageError(f"{origin}: version = {version!r}: a package needs version = \"X.Y.Z\" "
                           "(three numbers, e.g. \"1.0.0\"); bump it for every change you deploy")
    if not isinstance(requires, list) or len(requires) > 100 or not all(
            isinstance(r, str) and REQUIRE.match(r.strip()) for r in requires):
        raise PackageError(f"{origin}: requires = {requires!r}: a list of PyPI requirements such as "
                           "\"attrs==23.2.0\" (at most 100)")
    try:
        manifest = _manifest.from_dict(fields, origin)
    except _manifest.ManifestError as e:
        raise PackageError(str(e)) from None
    _check_program(manifest.program, origin, paths)
    return PackageManifest(manifest, version, [r.strip() for r in requires])


def _check_program(program, origin, paths):
    module, sep, _function = program.partition(":")
    if not sep:
        raise PackageError(f"{origin}: program = {program!r}: a package's program is "
                           "\"module:function\", a module of the package (not a path)")
    top = module.split(".")[0]
    if top == "aether" or top in sys.stdlib_module_names:
        raise PackageError(f"{origin}: program = {program!r}: the module {top!r} is the standard "
                           "library's or the image's own; name your module something else")
    if paths is not None:
        rel = module.replace(".", "/")
        if f"{rel}.py" not in paths and f"{rel}/__init__.py" not in paths:
            raise PackageError(f"{origin}: program = {program!r}: the package has neither {rel}.py "
                               f"nor {rel}/__init__.py")


def check_path(path, origin):
    """A file's path inside a package: relative, clean, printable, bounded."""
    parts = path.split("/")
    if (not path or len(path) > MAX_PATH or len(parts) > MAX_DEPTH
            or not all(PART.match(p) for p in parts)):
        raise PackageError(f"{origin}: file {path[:80]!r}: a package's paths are relative, at most "
                           f"{MAX_PATH} characters and {MAX_DEPTH} levels, made of letters, digits and "
                           "'._+-' (no '/' at the start, no '..', no hidden files)")
    return path


# -- packing (the host) --------------------------------------------------------------------


def collect(directory):
    """{path: absolute file} of a package directory; links, devices and odd names refused."""
    found = {}
    top = os.path.abspath(directory)
    for root, dirs, files in os.walk(top):
        rel_root = os.path.relpath(root, top)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED)
        for entry in sorted(dirs + files):
            full = os.path.join(root, entry)
            rel = entry if rel_root == "." else f"{rel_root}/{entry}"
            if entry.startswith(".") or entry.endswith((".pyc", SUFFIX)):
                continue
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                raise PackageError(f"{full}: a symbolic link; a package holds plain files only "
                                   "(copy the file in)")
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise PackageError(f"{full}: not a plain file; a package holds plain files only")
            found[check_path(rel, directory)] = full
    if len(found) > MAX_FILES:
        raise PackageError(f"{directory}: {len(found)} files; a package holds at most {MAX_FILES}")
    return found


def read_dir(directory):
    """(PackageManifest, {path: absolute file}) of a package directory, checked."""
    origin = os.path.join(directory, MANIFEST)
    files = collect(directory)
    if MANIFEST not in files:
        raise PackageError(f"{directory}: no {MANIFEST}; a package directory starts with one "
                           "(see docs/agents.md)")
    if any(p == VENDOR or p.startswith(VENDOR + "/") for p in files):
        raise PackageError(f"{directory}/{VENDOR}: pack makes vendor/ from requires; remove it "
                           "and list the dependencies in requires")
    with open(files[MANIFEST], "rb") as f:
        pm = parse_manifest(f.read(MAX_MANIFEST + 1), origin, set(files))
    return pm, files


def pack(directory, out_dir=None, vendored=None):
    """Write NAME-VERSION.aether for a package directory; returns (path, package sha256).

    ``vendored``: {path under vendor/: absolute file} made by vendor.py for ``requires``."""
    pm, files = read_dir(directory)
    files = dict(files)
    for rel, full in (vendored or {}).items():
        files[check_path(f"{VENDOR}/{rel}", "vendor")] = full
    entries = []
    for rel in sorted(files):
        with open(files[rel], "rb") as f:
            data = f.read()
        mode = 0o755 if os.stat(files[rel]).st_mode & 0o100 else 0o644
        entries.append((rel, data, mode))
    index = index_bytes(pm, [(rel, hashlib.sha256(d).hexdigest(), len(d), m) for rel, d, m in entries])
    digest = hashlib.sha256(index).hexdigest()
    path = os.path.join(out_dir or os.getcwd(), pm.label + SUFFIX)
    with open(path + ".tmp", "wb") as out:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            _add(tar, INDEX, index, 0o644)
            _add(tar, INDEX_HASH, (digest + "\n").encode(), 0o644)
            for rel, data, mode in entries:
                _add(tar, FILES + rel, data, mode)
    os.replace(path + ".tmp", path)
    return path, digest


def index_bytes(pm, files):
    index = {"format": FORMAT, "name": pm.name, "version": pm.version, "requires": pm.requires,
             "files": [list(f) for f in sorted(files)]}
    return json.dumps(index, sort_keys=True, indent=1, ensure_ascii=True).encode() + b"\n"


def _add(tar, name, data, mode):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


# -- reading (aetherd) ---------------------------------------------------------------------


class Index:
    """A checked PACKAGE index: name, version, requires, files {path: (sha256, size, mode)}, sha256."""

    def __init__(self, data, digest, origin):
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise PackageError(f"{origin}: {INDEX} is not valid JSON: {e}") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise PackageError(f"{origin}: {INDEX} is not a package index of format {FORMAT} "
                               "(pack it again with this AetherOS's aetherctl)")
        files = raw.get("files")
        if not isinstance(files, list) or len(files) > MAX_FILES:
            raise PackageError(f"{origin}: {INDEX} files: a list of at most {MAX_FILES} entries")
        self.files = {}
        for entry in files:
            if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str)
                    and isinstance(entry[1], str) and re.fullmatch(r"[0-9a-f]{64}", entry[1])
                    and _count(entry[2]) and entry[3] in (0o644, 0o755)):
                raise PackageError(f"{origin}: {INDEX}: a file entry is [path, sha256, size, mode]; "
                                   f"got {str(entry)[:80]}")
            path = check_path(entry[0], origin)
            if path in self.files:
                raise PackageError(f"{origin}: {INDEX} lists {path} twice")
            self.files[path] = (entry[1], entry[2], entry[3])
        self.name, self.version = raw.get("name"), raw.get("version")
        self.requires, self.sha256 = raw.get("requires") or [], digest
        self.size = sum(size for _h, size, _m in self.files.values())
        if MANIFEST not in self.files:
            raise PackageError(f"{origin}: the package has no {MANIFEST}")


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1 << 40


KINDS = {b"1": "a hard link", b"2": "a symbolic link", b"3": "a device", b"4": "a device",
         b"5": "a directory", b"6": "a FIFO", b"7": "a contiguous file", b"x": "a pax header",
         b"g": "a pax global header", b"L": "a GNU long name", b"K": "a GNU long link name",
         b"S": "a GNU sparse file"}


def scan_headers(fileobj, origin):
    """Walk the archive's raw 512-byte headers before tarfile parses it: pack writes plain
    ustar files only, so any other member type (links, devices, and the pax and GNU extension
    headers tarfile would read whole into memory) is refused here, and the count is bounded."""
    start, count = fileobj.tell(), 0
    while True:
        header = fileobj.read(512)
        if len(header) < 512 or header == bytes(512):
            break
        count += 1
        if header[257:262] != b"ustar":
            raise PackageError(f"{origin}: not a package archive (an uncompressed tar from aetherctl "
                               f"pack): member {count} has no ustar header")
        kind = header[156:157]
        name = header[:100].split(b"\0")[0].decode("ascii", "replace")
        if kind not in (b"0", b"\0"):
            what = KINDS.get(kind, f"of type {kind!r}")
            raise PackageError(f"{origin}: member {name[:80]!r} is {what}; a package archive holds "
                               "plain files only (make it with aetherctl pack)")
        if count > MAX_FILES + 2:
            raise PackageError(f"{origin}: more than {MAX_FILES} members")
        try:
            size = int(header[124:136].split(b"\0")[0].strip() or b"0", 8)
        except ValueError:
            raise PackageError(f"{origin}: member {name[:80]!r} has a damaged header") from None
        fileobj.seek((size + 511) // 512 * 512, os.SEEK_CUR)
    fileobj.seek(start)


def open_archive(fileobj, origin):
    """(tarfile, Index) of an archive whose first two members are the index and its hash."""
    scan_headers(fileobj, origin)
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r:")
        first, second = tar.next(), tar.next()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise PackageError(f"{origin}: not a package archive (an uncompressed tar from "
                           f"aetherctl pack): {e}") from None
    if first is None or first.name != INDEX or second is None or second.name != INDEX_HASH:
        raise PackageError(f"{origin}: not a package archive: it must start with {INDEX} and "
                           f"{INDEX_HASH} (make it with aetherctl pack)")
    for member in (first, second):
        if not member.isreg() or member.size > MAX_INDEX:
            raise PackageError(f"{origin}: {member.name} must be a plain file of at most {MAX_INDEX} bytes")
    index = tar.extractfile(first).read()
    stated = tar.extractfile(second).read().decode("ascii", "replace").strip()
    digest = hashlib.sha256(index).hexdigest()
    if stated != digest:
        raise PackageError(f"{origin}: hash mismatch: {INDEX} hashes to {digest}, the archive says "
                           f"{stated[:64]!r}; the file is damaged or was changed: pack it again")
    return tar, Index(index, digest, origin)


def unpack(fileobj, origin, dest_fd=None):
    """Verify every member of an archive, writing the files beneath ``dest_fd`` (a fresh,
    empty directory) if given.  Returns (Index, PackageManifest); PackageError says what broke."""
    tar, index = open_archive(fileobj, origin)
    seen, manifest_data = set(), None
    while True:
        try:
            member = tar.next()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise PackageError(f"{origin}: the archive is damaged: {e}") from None
        if member is None:
            break
        rel = _member_path(member, origin, index, seen)
        data = _copy(tar.extractfile(member), member.size, index.files[rel], rel, origin, dest_fd,
                     keep=rel == MANIFEST)
        if rel == MANIFEST:
            manifest_data = data
    missing = sorted(set(index.files) - seen)
    if missing:
        raise PackageError(f"{origin}: the archive lacks {len(missing)} file(s) its index lists: "
                           f"{', '.join(missing[:5])}")
    pm = parse_manifest(manifest_data, f"{origin}: {MANIFEST}", set(index.files))
    if (pm.name, pm.version) != (index.name, index.version):
        raise PackageError(f"{origin}: the index says {index.name}-{index.version}, {MANIFEST} says "
                           f"{pm.label}: pack it again")
    return index, pm


def _member_path(member, origin, index, seen):
    name = member.name
    if not member.isreg():
        kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk() else
                "a directory" if member.isdir() else "a device or special file")
        raise PackageError(f"{origin}: member {name[:80]!r} is {kind}; a package archive holds "
                           "plain files only")
    if not name.startswith(FILES):
        raise PackageError(f"{origin}: member {name[:80]!r} is outside {FILES}; not a package made "
                           "by aetherctl pack")
    rel = check_path(name[len(FILES):], origin)
    if rel not in index.files:
        raise PackageError(f"{origin}: member {rel} is not in the package's index")
    if rel in seen:
        raise PackageError(f"{origin}: member {rel} appears twice")
    seen.add(rel)
    if member.size != index.files[rel][1]:
        raise PackageError(f"{origin}: {rel} is {member.size} bytes, the index says {index.files[rel][1]}")
    return rel


def _copy(src, size, entry, rel, origin, dest_fd, keep):
    """Hash a member while writing it beneath dest_fd; returns its bytes when keep."""
    sha, kept, left = hashlib.sha256(), bytearray(), size
    out = _create(dest_fd, rel, entry[2]) if dest_fd is not None else None
    try:
        while left:
            block = src.read(min(CHUNK, left))
            if not block:
                raise PackageError(f"{origin}: {rel} ends early; the archive is truncated")
            left -= len(block)
            sha.update(block)
            if keep:
                kept.extend(block)
            if out is not None:
                view = memoryview(block)
                while view:
                    view = view[os.write(out, view):]
    finally:
        if out is not None:
            os.close(out)
    if sha.hexdigest() != entry[0]:
        raise PackageError(f"{origin}: hash mismatch: {rel} hashes to {sha.hexdigest()}, the index "
                           f"says {entry[0]}; the archive is damaged or was changed")
    return bytes(kept)


def _create(dest_fd, rel, mode):
    """A new file at rel beneath dest_fd: each directory made and opened without following."""
    parts = rel.split("/")
    fd = os.dup(dest_fd)
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
        out = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      mode, dir_fd=fd)
        os.fchmod(out, mode)
        return out
    finally:
        os.close(fd)


def verify_file(path):
    """(Index, PackageManifest) of an archive on disk, every hash checked (nothing written)."""
    with open(path, "rb") as f:
        return unpack(f, os.path.basename(path))
