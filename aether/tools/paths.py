"""Where a tools caller may reach, for the files.* tools (files.py): its root, the refusals
that name the rule, OS errors as tool errors, and directories opened beneath the root
(aether/safepath.py) with what is created there given to the caller.
"""

import errno
import os

from .. import safepath
from .core import InvalidArguments, NotFound, PermissionDenied, ToolError, ToolFailed, Unavailable

PROTECTED = ("/proc", "/sys", "/dev")  # never written, deleted or created in, by anyone
inside = safepath.inside


class WrongType(ToolError):
    """A directory where a file was expected, or the other way round."""

    code = "wrong_type"


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


def tree(caller):
    """The caller's tree opened for a walk (a safepath.Beneath; close it after use)."""
    root = caller_root(caller)
    try:
        return safepath.Beneath(root, confined=not caller.privileged)
    except OSError as e:
        raise os_error(e, root) from None


def refuse(caller, path, rule, why):
    return PermissionDenied(f"{caller.principal} may not touch {path!r}: {why} (rule: {rule})",
                            caller=caller.principal, path=path, rule=rule)


def refused(caller, e):
    """A safepath.Refused as the ToolError to answer with."""
    if e.rule == "nul":
        return InvalidArguments("args.path: expected a path without NUL characters",
                                path="args.path", rule="nul")
    return refuse(caller, e.path, e.rule, str(e))


def check_writable(caller, path, real):
    for top in PROTECTED:
        if inside(real, top):
            raise refuse(caller, path, "protected_path",
                         f"{real} is under {top}, which no tool writes to")


def os_error(e, real):
    """An OSError as the ToolError a caller can act on (what went wrong, and what to do)."""
    real = e.filename if isinstance(e.filename, str) and e.filename else real
    if isinstance(e, FileNotFoundError):
        return NotFound(f"{real} does not exist", path=real)
    if isinstance(e, NotADirectoryError):
        return WrongType(f"a part of {real} is not a directory", path=real)
    if isinstance(e, IsADirectoryError):
        return WrongType(f"{real} is a directory (files.list lists it)", path=real)
    return oserror_tool_error(e, real)


def oserror_tool_error(e, what):
    """The ToolError for an OSError by its errno: the caller's mistake, or the system's state."""
    name = errno.errorcode.get(e.errno, "")
    why = e.strerror or str(e)
    if isinstance(e, TimeoutError) or e.errno == errno.ETIMEDOUT:
        return Unavailable(f"{what}: timed out ({why}); the other side did not answer in time: "
                           "retry, or give a longer timeout", errno=name or "ETIMEDOUT")
    if type(e).__name__ == "gaierror":
        return Unavailable(f"{what}: the name did not resolve ({why}); check the host name, and "
                           "that this machine has a network and DNS (network.interfaces)",
                           errno="EAI")
    if e.errno in (errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return Unavailable(f"{what}: {why}; the other side cannot be reached now", errno=name)
    if e.errno == errno.ENAMETOOLONG:
        return InvalidArguments(f"{what}: a name in the path is too long (at most 255 bytes per "
                                "name, 4096 in all); use a shorter path", path="args.path",
                                rule="name_too_long")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return Unavailable(f"{what}: the disk is full ({why}); delete files (files.delete) or "
                           "free space, then retry", errno=name)
    if e.errno == errno.EROFS:
        return Unavailable(f"{what}: the file system is read-only ({why}); it cannot be "
                           "changed until it is remounted read-write", errno=name)
    if e.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"{what}: {why} (the file's permissions do not allow it)",
                                path=what, rule="file_permissions")
    if e.errno in (errno.ELOOP, errno.EXDEV, errno.EBUSY, errno.ETXTBSY, errno.ENOTEMPTY,
                   errno.EINVAL):
        return InvalidArguments(f"{what}: {why}; check the path", path="args.path", rule=name.lower())
    if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.EIO):
        return Unavailable(f"{what}: {why}; the system is short of a resource, retry later",
                           errno=name)
    return ToolFailed(f"{what}: {why}", path=what, errno=name)


class Opened:
    """A walk's result held open: ``with walked(caller, path) as w:`` gives w.fd, w.name, w.real."""

    def __init__(self, caller, path, last="follow", make=None):
        self.caller, self.path = caller, path
        self.tree = tree(caller)
        try:
            self.fd, self.name, names = self.tree.walk(path, last, make)
        except safepath.Refused as e:
            self.tree.close()
            raise refused(caller, e) from None
        except OSError as e:
            self.tree.close()
            raise os_error(e, path) from None
        except BaseException:
            self.tree.close()
            raise
        self.parent = self.tree.shown(names)
        self.real = self.tree.shown(names + [self.name]) if self.name else self.parent

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        self.tree.close()


def open_dir(caller, path):
    """(fd, real path) of the directory ``path``, opened beneath the caller's tree."""
    with tree(caller) as t:
        try:
            return t.open_dir(path)
        except safepath.Refused as e:
            raise refused(caller, e) from None
        except OSError as e:
            raise os_error(e, path) from None


def own(caller, name, dir_fd):
    """Give what a confined caller creates to its uid/gid (when aetherd runs as root)."""
    if caller.privileged or caller.uid is None or os.geteuid() != 0:
        return
    gid = caller.gid if caller.gid is not None else -1
    os.chown(name, caller.uid, gid, dir_fd=dir_fd, follow_symlinks=False)
