"""files.*: list, read, write and delete files, confined to what the caller may touch.

Confinement of a non-privileged caller (``Caller.root`` is its data directory):

* relative paths start at the root; absolute paths must lie inside it;
* the path is resolved (symbolic links and ``..``) and must stay inside the root:
  a link that leads out, a ``..`` above the root, an absolute path elsewhere are
  refused, each with its own rule in the message;
* the descriptor that is actually opened is checked again (``/proc/self/fd``), so
  a link swapped in after the check cannot lead outside; creating, renaming and
  unlinking happen relative to a checked directory descriptor.

A privileged caller may read anything and write anything except under /proc, /sys
and /dev.  Only regular files are read or written: devices, FIFOs and sockets are
refused before they are opened.

Limits (per call): read ``max_bytes`` default READ_DEFAULT (64 KiB), at most READ_MAX
(1 MiB); write at most WRITE_MAX (4 MiB) of decoded content; append never makes a file
larger than FILE_MAX (64 MiB); list at most LIST_MAX entries; a recursive delete stops
after DELETE_MAX entries.

Writes are atomic: the content goes to a temporary file in the same directory, is
fsync'ed, and is renamed over the target (mode ``create`` links it instead, which
fails if the name appeared meanwhile); the directory is fsync'ed after.  ``append``
is not atomic: a crash may keep part of the appended bytes.
"""

import os
import stat

from .core import (AlreadyExists, InvalidArguments, NotFound, PermissionDenied, ToolError,
                   ToolFailed, TooLarge, args_schema, tool)

READ_DEFAULT = 64 * 1024
READ_MAX = 1024 * 1024
WRITE_MAX = 4 * 1024 * 1024
FILE_MAX = 64 * 1024 * 1024
LIST_DEFAULT = 1000
LIST_MAX = 10000
DELETE_MAX = 100000
PROTECTED = ("/proc", "/sys", "/dev")  # never written, deleted or created in, by anyone

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class WrongType(ToolError):
    """A directory where a file was expected, or the other way round."""

    code = "wrong_type"


PATH = {"type": "string", "minLength": 1, "maxLength": 4096,
        "description": "file path: relative to the caller's data directory, or absolute"}


# -- confinement --------------------------------------------------------------------------------

def inside(path, root):
    return root == "/" or path == root or path.startswith(root + "/")


def caller_root(caller):
    """The real path of the tree the caller may touch ("/" when privileged)."""
    if caller.privileged:
        return "/"
    if caller.root is None:
        raise PermissionDenied(f"{caller.principal} has no data directory, so it may not use "
                               "files.* (rule: confined callers work inside their data directory)",
                               caller=caller.principal, rule="no_root")
    root = os.path.realpath(caller.root)
    if not os.path.isdir(root):
        raise NotFound(f"the data directory {root} of {caller.principal} does not exist")
    return root


def refuse(caller, path, rule, why):
    return PermissionDenied(f"{caller.principal} may not touch {path!r}: {why} (rule: {rule})",
                            caller=caller.principal, path=path, rule=rule)


def check_inside(caller, path, joined, real, root):
    """Refuse ``real`` unless it is inside ``root``; the message says how it got out."""
    if inside(real, root):
        return
    lexical = os.path.normpath(joined)
    if inside(lexical, root):
        raise refuse(caller, path, "symlink_escape",
                     f"a symbolic link leads to {real}, outside the data directory {root}")
    if ".." in path.split("/"):
        raise refuse(caller, path, "dotdot_escape", f"'..' climbs out of the data directory {root}")
    raise refuse(caller, path, "outside_root", f"{lexical} is outside the data directory {root}")


def check_writable(caller, path, real):
    for top in PROTECTED:
        if inside(real, top):
            raise refuse(caller, path, "protected_path",
                         f"{real} is under {top}, which no tool writes to")


def locate(caller, path, write=False):
    """(real path, root) of ``path`` for ``caller``; PermissionDenied names the rule broken."""
    if "\0" in path:
        raise InvalidArguments("args.path: expected a path without NUL characters",
                               path="args.path", rule="nul")
    root = caller_root(caller)
    joined = os.path.join(root, path)
    real = os.path.realpath(joined)
    check_inside(caller, path, joined, real, root)
    if write:
        check_writable(caller, path, real)
    return real, root


def check_fd(fd, caller, path, root, write=False):
    """Re-check what was really opened: closes ``fd`` and refuses if it is outside ``root``."""
    try:
        actual = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return  # no /proc: the check on the resolved path stands alone
    try:
        if not inside(actual, root):
            raise refuse(caller, path, "symlink_escape",
                         f"it changed while being opened and now leads to {actual}")
        if write:
            check_writable(caller, path, actual)
    except PermissionDenied:
        os.close(fd)
        raise


def kind_of(mode):
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"),
                       (stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "char_device"),
                       (stat.S_ISBLK, "block_device")):
        if test(mode):
            return name
    return "other"


def check_regular(caller, path, real, st):
    if stat.S_ISDIR(st.st_mode):
        raise WrongType(f"{real} is a directory (files.list lists it)", path=real)
    if not stat.S_ISREG(st.st_mode):
        raise refuse(caller, path, "not_regular",
                     f"{real} is a {kind_of(st.st_mode).replace('_', ' ')}; "
                     "only regular files are read or written")


def os_error(e, real):
    """An OSError as the ToolError a caller can act on."""
    if isinstance(e, FileNotFoundError):
        return NotFound(f"{real} does not exist", path=real)
    if isinstance(e, NotADirectoryError):
        return WrongType(f"a part of {real} is not a directory", path=real)
    if isinstance(e, IsADirectoryError):
        return WrongType(f"{real} is a directory", path=real)
    return ToolFailed(f"{real}: {e.strerror or e}", path=real)


def open_dir(caller, path, real, root, write=False):
    try:
        fd = os.open(real, O_DIR)
    except OSError as e:
        raise os_error(e, real) from None
    check_fd(fd, caller, path, root, write)
    return fd


def make_dirs(caller, path, real_dir, root):
    """Open ``real_dir``, creating the missing directories one by one below a checked ancestor."""
    missing, existing = [], real_dir
    while not os.path.isdir(existing):
        existing, name = os.path.split(existing)
        missing.append(name)
    fd = open_dir(caller, path, existing, root, write=True)
    try:
        for name in reversed(missing):
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
                own(caller, name, fd)
            except FileExistsError:
                pass
            new = os.open(name, O_DIR | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = new
    except OSError as e:
        os.close(fd)
        raise os_error(e, real_dir) from None
    return fd


def own(caller, name, dir_fd):
    """Give what a confined caller creates to its uid/gid (when aetherd runs as root)."""
    if caller.privileged or caller.uid is None or os.geteuid() != 0:
        return
    gid = caller.gid if caller.gid is not None else -1
    os.chown(name, caller.uid, gid, dir_fd=dir_fd, follow_symlinks=False)


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
    """
    real, root = locate(caller, args["path"])
    fd = open_dir(caller, args["path"], real, root)
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
            if stat.S_ISLNK(st.st_mode):
                try:
                    item["target"] = os.readlink(entry.name, dir_fd=fd)
                except OSError:
                    pass
            entries.append(item)
    return entries


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
    path = args["path"]
    real, root = locate(caller, path)
    fd = _open_regular(caller, path, real, root)
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
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            content = data.decode("utf-8", "replace")
            result["lossy"] = True
    result.update(content=content, bytes=len(data), next_offset=args["offset"] + len(data),
                  eof=not more)
    return result


def _open_regular(caller, path, real, root):
    try:
        check_regular(caller, path, real, os.lstat(real))
        fd = os.open(real, O_READ)
    except OSError as e:
        raise os_error(e, real) from None
    check_fd(fd, caller, path, root)
    try:
        check_regular(caller, path, real, os.fstat(fd))
    except ToolError:
        os.close(fd)
        raise
    return fd


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
    An overwritten file keeps its permissions and owner.
    """
    path = args["path"]
    data = _decode(args["content"], args["encoding"])
    if len(data) > WRITE_MAX:
        raise TooLarge(f"{len(data)} bytes is more than files.write takes at once ({WRITE_MAX})")
    real, root = locate(caller, path, write=True)
    if real == root:
        raise WrongType(f"{real} is the data directory itself, not a file", path=real)
    parent, name = os.path.split(real)
    if args["make_parents"]:
        pfd = make_dirs(caller, path, parent, root)
    else:
        pfd = open_dir(caller, path, parent, root, write=True)
    try:
        old = _existing(caller, path, real, name, pfd)
        if args["mode"] == "append":
            size = _append(caller, name, pfd, data, old, real)
        else:
            if old is not None and args["mode"] == "create":
                raise _exists(real)
            _replace(caller, name, pfd, data, old, args["mode"] == "create", real)
            size = len(data)
        os.fsync(pfd)
    except OSError as e:
        raise os_error(e, real) from None
    finally:
        os.close(pfd)
    return {"path": real, "mode": args["mode"], "bytes_written": len(data), "size": size,
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


def _existing(caller, path, real, name, pfd):
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    check_regular(caller, path, real, st)
    return st


def _replace(caller, name, pfd, data, old, exclusive, real):
    tmp = f".aether-write-{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644, dir_fd=pfd)
    try:
        try:
            _write_all(fd, data)
            if old is not None:
                os.fchmod(fd, stat.S_IMODE(old.st_mode))
                if os.geteuid() == 0:
                    os.fchown(fd, old.st_uid, old.st_gid)
            os.fsync(fd)
        finally:
            os.close(fd)
        if old is None:
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


def _append(caller, name, pfd, data, old, real):
    if old is not None and old.st_size + len(data) > FILE_MAX:
        raise TooLarge(f"appending {len(data)} bytes would make {real} larger than "
                       f"{FILE_MAX} bytes, the most files.write grows a file to", path=real)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(name, flags | os.O_NOCTTY, 0o644, dir_fd=pfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise refuse(caller, real, "not_regular", "it is not a regular file")
        if old is None:
            own(caller, name, pfd)
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
    real_parent, name, root = _locate_entry(caller, path)
    real = os.path.join(real_parent, name)
    pfd = open_dir(caller, path, real_parent, root, write=True)
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        counts = {"files": 0, "directories": 0}
        if stat.S_ISDIR(st.st_mode):
            if not args["recursive"]:
                raise WrongType(f"{real} is a directory: set recursive to true to delete it "
                                "and everything in it", path=real)
            _remove_tree(pfd, name, real, st.st_dev, counts)
        else:
            os.unlink(name, dir_fd=pfd)
            counts["files"] += 1
        os.fsync(pfd)
    except OSError as e:
        raise os_error(e, real) from None
    finally:
        os.close(pfd)
    return {"path": real, "deleted": counts}


def _locate_entry(caller, path):
    """(real parent, name, root): the last component itself is not resolved, so a link
    is deleted, not its target."""
    if "\0" in path:
        raise InvalidArguments("args.path: expected a path without NUL characters",
                               path="args.path", rule="nul")
    root = caller_root(caller)
    joined = os.path.join(root, path)
    stripped = joined.rstrip("/") or "/"
    parent, name = os.path.split(stripped)
    if name in ("", ".", "..") or os.path.normpath(stripped) == root:
        raise refuse(caller, path, "root", "it names the data directory itself (or . or ..), "
                     "which files.delete does not remove")
    real_parent = os.path.realpath(parent)
    check_inside(caller, path, parent, real_parent, root)
    real = os.path.join(real_parent, name)
    check_inside(caller, path, stripped, real, root)
    check_writable(caller, path, real)
    if real == root:
        raise refuse(caller, path, "root", "it names the data directory itself")
    return real_parent, name, root


def _remove_tree(dir_fd, name, here, device, counts):
    """Remove the directory ``name`` (at ``here``) under ``dir_fd`` and all it holds."""
    fd = os.open(name, O_DIR | os.O_NOFOLLOW, dir_fd=dir_fd)
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
                os.unlink(child, dir_fd=fd)
                counts["files"] += 1
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
    counts["directories"] += 1
