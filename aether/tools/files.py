"""files.*: list, read, write and delete files, confined to what the caller may touch.

Confinement of a non-privileged caller (``Caller.root`` is its data directory):

* relative paths start at the root; absolute paths must lie inside it;
* every path is walked beneath the root one component at a time by
  aether/safepath.py (``O_NOFOLLOW`` relative to a directory descriptor): a
  symbolic link that stays inside is followed, one that leads out, a ``..`` above
  the root and an absolute path elsewhere are refused, each with its own rule in
  the message; nothing is ever opened by a path string, so a link swapped in
  meanwhile cannot lead outside;
* a regular file with more than one hard link is refused (rule ``hardlink``): it
  may be root's or another agent's file under a second name;
* what a confined caller creates belongs to its uid, and an overwrite never copies
  a foreign owner or set-id bits;
* a confined caller's writes count against its disk quota and never eat into the
  data disk's reserve for the system (aether/tools/quota.py).

A privileged caller may read anything and write anything except under /proc, /sys
and /dev.  Only regular files are read or written: devices, FIFOs and sockets are
refused before they are opened.

Limits (per call): read ``max_bytes`` default READ_DEFAULT (64 KiB), at most READ_MAX
(512 KiB, so that the answer, base64 included, fits one ABI frame); write at most
WRITE_MAX (512 KiB) of decoded content, the most one 1 MiB request frame carries
as base64 (larger files: ``create`` the first part, then ``append`` the rest);
append never makes a file larger than FILE_MAX (64 MiB); list at most LIST_MAX
entries; a recursive delete stops after DELETE_MAX entries.

Names that are not valid UTF-8 come out of files.list with their bytes escaped as
lone surrogates (U+DC80..U+DCFF, Python's ``surrogateescape``) and
``"undecodable": true``; given back as a path they name the same file.

Writes are atomic: the content goes to a temporary file in the same directory
(``O_CREAT | O_EXCL``), is fsync'ed, and is renamed over the target (mode
``create`` links it instead, which fails if the name appeared meanwhile); the
directory is fsync'ed after.  ``append`` is not atomic: a crash may keep part of
the appended bytes.

Who may reach what (the caller's root, the refusals, opening beneath it) is paths.py.
"""

import os
import stat

from .. import safepath
from . import quota
from .core import AlreadyExists, InvalidArguments, PermissionDenied, TooLarge, args_schema, tool
from .paths import Opened, WrongType, check_writable, open_dir, os_error, own, refuse, refused, tree

READ_DEFAULT = 64 * 1024
READ_MAX = 512 * 1024
WRITE_MAX = 512 * 1024
FILE_MAX = 64 * 1024 * 1024
LIST_DEFAULT = 1000
LIST_MAX = 10000
DELETE_MAX = 100000

kind_of = safepath.kind_of


PATH = {"type": "string", "minLength": 1, "maxLength": 4096,
        "description": "file path: relative to the caller's data directory, or absolute"}


# -- files.list ---------------------------------------------------------------------------------

@tool("files.list", args_schema({
    "path": dict(PATH, default=".", description="directory to list (default: the data directory)"),
    "pattern": {"type": "string", "minLength": 1, "maxLength": 256,
                "description": "only names matching this glob, e.g. '*.log' (case-sensitive)"},
    "limit": {"type": "integer", "minimum": 1, "maximum": LIST_MAX, "default": LIST_DEFAULT,
              "description": f"at most this many entries (up to {LIST_MAX})"},
}))
def list_files(caller, args):
    """List a directory: each entry's name, type, size, permissions and modification time.

    Entries are sorted by name.  ``type`` is file, directory, symlink, fifo, socket,
    char_device or block_device; symbolic links are not followed and show their target.
    ``truncated`` says the limit cut the list; ``total`` counts every matching entry.
    A name that is not valid UTF-8 has ``undecodable`` set (its bytes are escaped).
    """
    fd, real = open_dir(caller, args["path"])
    try:
        entries = _scan(fd, args.get("pattern"))
    finally:
        os.close(fd)
    entries.sort(key=lambda e: e["name"])
    shown = entries[:args["limit"]]
    return {"path": real, "entries": shown, "count": len(shown), "total": len(entries),
            "truncated": len(entries) > len(shown)}


def _scan(fd, pattern):
    if pattern is not None:
        import fnmatch
    entries = []
    with os.scandir(fd) as it:
        for entry in it:
            if pattern is not None and not fnmatch.fnmatchcase(entry.name, pattern):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # removed while listing
            item = {"name": entry.name, "type": kind_of(st.st_mode), "size": st.st_size,
                    "mode": f"{stat.S_IMODE(st.st_mode):04o}", "mtime": round(st.st_mtime, 3)}
            if not _decodable(entry.name):
                item["undecodable"] = True
            if stat.S_ISLNK(st.st_mode):
                try:
                    item["target"] = os.readlink(entry.name, dir_fd=fd)
                except OSError:
                    pass
            entries.append(item)
    return entries


def _decodable(name):
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


# -- files.read ---------------------------------------------------------------------------------

@tool("files.read", args_schema({
    "path": PATH,
    "offset": {"type": "integer", "minimum": 0, "maximum": 2 ** 62, "default": 0,
               "description": "start reading at this byte"},
    "max_bytes": {"type": "integer", "minimum": 1, "maximum": READ_MAX, "default": READ_DEFAULT,
                  "description": f"read at most this many bytes (default {READ_DEFAULT}, "
                                 f"at most {READ_MAX})"},
    "encoding": {"type": "string", "enum": ["text", "base64"], "default": "text",
                 "description": "text (UTF-8; invalid bytes replaced and 'lossy' set) or base64"},
}, required=["path"]))
def read_file(caller, args):
    """Read part of a regular file, as UTF-8 text or base64.

    Returns ``content``, the ``bytes`` read, ``next_offset`` (pass it as ``offset`` to
    go on) and ``eof``.  In text mode a UTF-8 character cut by ``max_bytes`` is left for
    the next call.  /proc files read fine (their size shows as 0).
    """
    fd, real = _open_regular(caller, args["path"])
    try:
        size = os.fstat(fd).st_size
        data = _pread(fd, args["max_bytes"] + 1, args["offset"])
    finally:
        os.close(fd)
    more = len(data) > args["max_bytes"]
    data = data[:args["max_bytes"]]
    result = {"path": real, "size": size, "offset": args["offset"], "encoding": args["encoding"]}
    if args["encoding"] == "base64":
        import base64
        content = base64.b64encode(data).decode("ascii")
    else:
        if more:
            data = _whole_characters(data)
        content, data, cut = _fit_text(data)
        more = more or cut
        if content is None:
            content = data.decode("utf-8", "replace")
            result["lossy"] = True
    result.update(content=content, bytes=len(data), next_offset=args["offset"] + len(data),
                  eof=not more)
    return result


ANSWER_MAX = 768 * 1024     # bytes of content, as JSON, one answer may carry (frames: 1 MiB)


def _fit_text(data):
    """(text or None when not UTF-8, the bytes it holds, cut?): halved until its JSON fits."""
    import json
    cut = False
    while True:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        shown = text if text is not None else data.decode("utf-8", "replace")
        if len(data) <= 1024 or len(json.dumps(shown, ensure_ascii=False).encode("utf-8",
                                                                                "surrogatepass")) \
                <= ANSWER_MAX:
            return text, data, cut
        data, cut = _whole_characters(data[:len(data) // 2]), True


def _open_regular(caller, path):
    """(fd, real path) of the regular file ``path``, opened beneath the caller's tree."""
    with tree(caller) as t:
        try:
            fd, real, _st = t.open_file(path, os.O_RDONLY)
        except safepath.Refused as e:
            raise refused(caller, e) from None
        except OSError as e:
            raise os_error(e, path) from None
    return fd, real


def _pread(fd, n, offset):
    parts, got = [], 0
    while got < n:
        data = os.pread(fd, n - got, offset + got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _whole_characters(data):
    """``data`` without a UTF-8 sequence cut at its end (unless that leaves nothing)."""
    for back in range(1, min(4, len(data)) + 1):
        lead = data[-back]
        if lead & 0xC0 != 0x80:  # the last sequence starts here
            need = 2 if 0xC0 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else \
                4 if 0xF0 <= lead < 0xF8 else 1
            return data[:-back] if need > back and len(data) > back else data
    return data


# -- files.write --------------------------------------------------------------------------------

@tool("files.write", args_schema({
    "path": PATH,
    "content": {"type": "string", "maxLength": WRITE_MAX * 2,
                "description": f"what to write (at most {WRITE_MAX} bytes once decoded)"},
    "encoding": {"type": "string", "enum": ["text", "base64"], "default": "text",
                 "description": "how content is given: text (written as UTF-8) or base64"},
    "mode": {"type": "string", "enum": ["create", "overwrite", "append"], "default": "create",
             "description": "create (fail if it exists), overwrite (replace it) or append"},
    "make_parents": {"type": "boolean", "default": False,
                     "description": "create missing parent directories"},
}, required=["path", "content"]), risky_if={"mode": ["overwrite"]})
def write_file(caller, args):
    """Create, overwrite or append to a regular file (risky when it overwrites).

    ``create`` and ``overwrite`` are atomic: readers see the old content or the new,
    never a mix, even after a crash.  ``append`` adds to the end and is not atomic.
    An overwritten file keeps its permissions (and, for the privileged, its owner).
    At most WRITE_MAX bytes per call: write a larger file as a ``create`` and then
    ``append`` calls.
    """
    path = args["path"]
    data = _decode(args["content"], args["encoding"])
    if len(data) > WRITE_MAX:
        raise TooLarge(f"{len(data)} bytes is more than files.write takes at once ({WRITE_MAX}); "
                       "write the first part with mode 'create' and the rest with 'append'")
    make = (lambda name, fd: own(caller, name, fd)) if args["make_parents"] else None
    with Opened(caller, path, make=make) as w:
        if not w.name:
            raise WrongType(f"{w.real} is the data directory itself, not a file", path=w.real)
        check_writable(caller, path, w.real)
        try:
            old = _existing(caller, w, path)
            freeing = freed(old) if args["mode"] == "overwrite" else 0
            quota.check(caller, w.tree.top, len(data), freeing)
            if args["mode"] == "append":
                size = _append(caller, w, data, old, path)
            else:
                if old is not None and args["mode"] == "create":
                    raise _exists(w.real)
                _replace(caller, w.name, w.fd, data, old, args["mode"] == "create", w.real)
                size = len(data)
            os.fsync(w.fd)
        except safepath.Refused as e:
            raise refused(caller, e) from None
        except OSError as e:
            raise os_error(e, w.real) from None
        quota.wrote(caller, w.tree.top, len(data) - freeing)
    return {"path": w.real, "mode": args["mode"], "bytes_written": len(data), "size": size,
            "created": old is None}


def _decode(content, encoding):
    if encoding == "text":
        return content.encode("utf-8", "surrogatepass")
    import base64
    import binascii
    try:
        return base64.b64decode(content.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidArguments("args.content: expected base64 (A-Z a-z 0-9 + / and = padding), "
                               "got something else", path="args.content", rule="base64") from None


def _exists(real):
    return AlreadyExists(f"{real} already exists: mode 'overwrite' replaces it, "
                         "'append' adds to it", path=real)


def _existing(caller, w, path):
    """The stat of the file about to be written, or None; refuses what may not be written."""
    try:
        st = os.stat(w.name, dir_fd=w.fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    w.tree.check_regular(st, w.real, path)
    return st


def _replace(caller, name, pfd, data, old, exclusive, real):
    tmp = f".aether-write-{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644, dir_fd=pfd)
    try:
        try:
            _write_all(fd, data)
            if old is not None:
                _keep_owner(caller, fd, old)
            os.fsync(fd)
        finally:
            os.close(fd)
        if old is None or not caller.privileged:
            own(caller, tmp, pfd)
        if exclusive:
            _link_new(tmp, name, pfd, real)
        else:
            os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=pfd)
        except OSError:
            pass
        raise


def _keep_owner(caller, fd, old):
    """An overwrite keeps the old file's permissions; only the privileged keep a foreign
    owner, and a confined caller's file never gets set-id bits."""
    if caller.privileged:
        os.fchmod(fd, stat.S_IMODE(old.st_mode))
        if os.geteuid() == 0:
            os.fchown(fd, old.st_uid, old.st_gid)
    else:
        os.fchmod(fd, stat.S_IMODE(old.st_mode) & 0o777)


def _link_new(tmp, name, pfd, real):
    """Give the temporary file its name only if the name is still free, then drop ``tmp``."""
    try:
        os.link(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd, follow_symlinks=False)
    except FileExistsError:
        raise _exists(real) from None
    except OSError:  # a file system without hard links: check, then rename
        if _present(name, pfd):
            raise _exists(real) from None
        os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        return
    os.unlink(tmp, dir_fd=pfd)


def _present(name, pfd):
    try:
        os.stat(name, dir_fd=pfd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _append(caller, w, data, old, path):
    if old is not None and old.st_size + len(data) > FILE_MAX:
        raise TooLarge(f"appending {len(data)} bytes would make {w.real} larger than "
                       f"{FILE_MAX} bytes, the most files.write grows a file to", path=w.real)
    if old is None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | safepath.O_FILE
        fd = os.open(w.name, flags, 0o644, dir_fd=w.fd)
        own(caller, w.name, w.fd)
    else:
        fd, _real, _st = w.tree.open_in(w.fd, w.name, w.real, os.O_WRONLY | os.O_APPEND, path)
    try:
        _write_all(fd, data)
        os.fsync(fd)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- files.delete -------------------------------------------------------------------------------

@tool("files.delete", args_schema({
    "path": PATH,
    "recursive": {"type": "boolean", "default": False,
                  "description": "required to delete a directory and everything in it"},
}, required=["path"]), risky=True)
def delete_file(caller, args):
    """Delete a file, a symbolic link (not its target) or, with recursive, a directory tree.

    A directory is refused unless ``recursive`` is true.  A recursive delete does not
    follow symbolic links and does not cross into other mounted file systems; it stops
    after DELETE_MAX entries.  The caller's data directory itself cannot be deleted.
    """
    path = args["path"]
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last in ("", ".", ".."):
        raise refuse(caller, path, "root", "it names the data directory itself (or ends in . or "
                     "..), which files.delete does not remove; name the entry to delete")
    with Opened(caller, path, last="keep") as w:
        if not w.name:
            raise refuse(caller, path, "root", "it names the data directory itself")
        check_writable(caller, path, w.real)
        counts = {"files": 0, "directories": 0, "bytes": 0}
        try:
            st = os.stat(w.name, dir_fd=w.fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if not args["recursive"]:
                    raise WrongType(f"{w.real} is a directory: set recursive to true to delete "
                                    "it and everything in it", path=w.real)
                _remove_tree(w.fd, w.name, w.real, st.st_dev, counts)
            else:
                os.unlink(w.name, dir_fd=w.fd)
                counts["files"] += 1
                counts["bytes"] += freed(st)
            os.fsync(w.fd)
        except OSError as e:
            raise os_error(e, w.real) from None
        finally:
            quota.wrote(caller, w.tree.top, -counts["bytes"])
    gone = counts.pop("bytes")
    return {"path": w.real, "deleted": counts, "freed_bytes": gone}


def _remove_tree(dir_fd, name, here, device, counts):
    """Remove the directory ``name`` (at ``here``) under ``dir_fd`` and all it holds."""
    fd = os.open(name, safepath.O_DIR, dir_fd=dir_fd)
    try:
        if os.fstat(fd).st_dev != device:
            raise PermissionDenied(f"{here} is another mounted file system; files.delete "
                                   "does not cross into it (rule: mount_point)", path=here,
                                   rule="mount_point")
        with os.scandir(fd) as it:
            children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for child, is_dir in children:
            if counts["files"] + counts["directories"] >= DELETE_MAX:
                raise TooLarge(f"stopped after deleting {DELETE_MAX} entries under {here}; "
                               "call again to go on", path=here)
            if is_dir:
                _remove_tree(fd, child, f"{here}/{child}", device, counts)
            else:
                counts["bytes"] += _blocks(child, fd)
                os.unlink(child, dir_fd=fd)
                counts["files"] += 1
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
    counts["directories"] += 1


def freed(st):
    """Bytes the disk gets back when this name goes: its blocks (not its apparent size, so a
    sparse file frees what it held), and nothing while another hard link keeps the file."""
    if st is None or (st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode)):
        return 0
    return st.st_blocks * 512


def _blocks(name, dir_fd):
    try:
        return freed(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
    except OSError:
        return 0
