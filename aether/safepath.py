"""Open what a caller named so that no link can lead it out of the tree it may touch.

Every file aetherd opens, creates, renames or deletes for a caller goes through a
``Beneath``: the caller's tree (its data directory, or ``/`` for the privileged) is
opened once, and a path is walked beneath it one component at a time:

* each directory is opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to the one
  before it (``dir_fd``), so the kernel never follows a link on our behalf;
* a symbolic link met on the way is read (``readlink``) and its target walked the
  same way: a target inside the tree is followed, one that leads out is refused
  (rule ``symlink_escape``), and more than MAX_LINKS of them is refused too;
* ``..`` goes to the parent that the walk itself came through; above the tree's top
  it is refused (``dotdot_escape``); an absolute path is taken only when it names
  something inside the tree (``outside_root``);
* the last component of a file is looked at with ``lstat``, opened with
  ``O_NOFOLLOW``, and the opened file must be the one looked at (same device and
  inode), so a swap in between is caught.

A confined tree also refuses regular files with more than one hard link (rule
``hardlink``): a hard link planted in an agent's home to a file elsewhere (root's,
another agent's) would otherwise let the tools read or write it under the home's
name.  Nothing here creates files: the callers create them beneath the directory
fd this module hands back (``O_CREAT | O_EXCL`` for temporary files).

Only two descriptors are held at a time (the top and the current directory); ``..``
re-walks from the top, so a deep path cannot run aetherd out of descriptors.
Leaf module (errno, os, stat).
"""

import errno
import os
import stat

MAX_LINKS = 40                # symbolic links followed in one walk (the kernel's own limit)
MAX_DEPTH = 256               # directory levels below the top
O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_FILE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class Refused(Exception):
    """The path breaks a confinement rule; ``rule`` names it, str() says how and what to do."""

    def __init__(self, message, rule, path):
        super().__init__(message)
        self.rule, self.path = rule, path


def inside(path, top):
    """Is the (already clean) absolute ``path`` the tree ``top`` or below it?"""
    return top == "/" or path == top or path.startswith(top + "/")


class Beneath:
    """One directory tree, opened once; every path handed to it is resolved inside it.

    ``top`` is trusted (the system chose it); ``confined`` turns on the hard-link rule
    (it is off for the privileged, whose tree is ``/``).  Use as a context manager or
    call ``close()``.
    """

    def __init__(self, top, confined=True):
        self.given = os.path.normpath(os.fspath(top))
        self.top = os.path.realpath(self.given)
        self.confined = confined
        self.fd = os.open(self.top, O_DIR & ~os.O_NOFOLLOW)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the walk ------------------------------------------------------------------------

    def _relative(self, path):
        """The components of ``path`` below the top; absolute paths must name the tree."""
        if "\0" in path:
            raise Refused("the path holds a NUL character; give one without", "nul", path)
        if not path.startswith("/"):
            return [p for p in path.split("/") if p]
        clean = "/" + "/".join(p for p in path.split("/") if p)
        for top in (self.top, self.given):
            if inside(clean, top):
                return [p for p in clean[len(top):].split("/") if p]
        raise Refused(f"{clean} is outside the data directory {self.top} (relative paths start "
                      "there)", "outside_root", path)

    def _link(self, parent_fd, name, names, pending, path, links):
        """Queue the target of the symbolic link ``name``; may reset ``names`` to the top."""
        if links >= MAX_LINKS:
            raise Refused(f"it goes through more than {MAX_LINKS} symbolic links (a loop?)",
                          "too_many_links", path)
        target = os.readlink(name, dir_fd=parent_fd)
        if target.startswith("/"):
            clean = "/" + "/".join(p for p in target.split("/") if p)
            for top in (self.top, self.given):
                if inside(clean, top):
                    break
            else:
                raise Refused(f"a symbolic link leads to {target}, outside the data directory "
                              f"{self.top} (the link is {self.shown(names + [name])})",
                              "symlink_escape", path)
            names.clear()
            target = clean[len(top):]
        pending.extend((part, True) for part in reversed([p for p in target.split("/") if p]))

    def _reopen(self, names):
        """A descriptor for the directory ``names`` below the top, walked again from the top."""
        fd = os.dup(self.fd)
        try:
            for name in names:
                new = os.open(name, O_DIR, dir_fd=fd)
                os.close(fd)
                fd = new
        except BaseException:
            os.close(fd)
            raise
        return fd

    def shown(self, names):
        """The absolute path of ``names`` below the top (for results and messages)."""
        if not names:
            return self.top
        return ("" if self.top == "/" else self.top) + "/" + "/".join(names)

    def walk(self, path, last="follow", make=None):
        """Resolve ``path``: (descriptor of its parent directory, the last name, the names).

        ``last``: "follow" follows a symbolic link in the last place (inside the tree),
        "keep" leaves it (delete removes the link, not its target).  ``make(name, fd)``,
        when given, is called for each missing directory after creating it (mode 0755).
        The last name is "" when the path is the top itself.  The caller closes the fd.
        """
        pending = [(part, False) for part in reversed(self._relative(path))]
        names, fd, links = [], os.dup(self.fd), 0
        try:
            while pending:
                name, from_link = pending.pop()
                if name == ".":
                    continue
                if name == "..":
                    fd = self._up(fd, names, path, from_link)
                    continue
                if not pending:             # the last component: the caller opens it
                    if last == "follow" and _is_link(name, fd):
                        self._link(fd, name, names, pending, path, links)
                        links += 1
                        os.close(fd)
                        fd = self._reopen(names)
                        continue
                    return fd, name, names
                fd, links = self._down(fd, name, names, pending, path, links, make)
            return fd, "", names
        except BaseException:
            os.close(fd)
            raise

    def _up(self, fd, names, path, from_link):
        if not names:
            if self.top == "/":
                return fd
            if from_link:
                raise Refused(f"a symbolic link leads above the data directory {self.top} "
                              "(its target climbs out with '..')", "symlink_escape", path)
            raise Refused(f"'..' climbs out of the data directory {self.top}", "dotdot_escape", path)
        names.pop()
        os.close(fd)
        return self._reopen(names)

    def _down(self, fd, name, names, pending, path, links, make):
        """Step into the directory ``name`` (following an in-tree link): (new fd, links)."""
        try:
            new = os.open(name, O_DIR, dir_fd=fd)
        except FileNotFoundError:
            if make is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory",
                                        self.shown(names + [name])) from None
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
                make(name, fd)
            except FileExistsError:
                pass
            new = os.open(name, O_DIR, dir_fd=fd)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR) or not _is_link(name, fd):
                raise type(e)(e.errno, e.strerror, self.shown(names + [name])) from None
            self._link(fd, name, names, pending, path, links)
            os.close(fd)
            return self._reopen(names), links + 1
        if len(names) >= MAX_DEPTH:
            os.close(new)
            raise Refused(f"it is more than {MAX_DEPTH} directories deep", "too_deep", path)
        os.close(fd)
        names.append(name)
        return new, links

    # -- what the tools and the store open -----------------------------------------------

    def open_dir(self, path):
        """(fd of the directory ``path``, its absolute path)."""
        fd, name, names = self.walk(path)
        if not name:
            return fd, self.shown(names)
        try:
            new = os.open(name, O_DIR, dir_fd=fd)
        except OSError as e:
            raise type(e)(e.errno, e.strerror, self.shown(names + [name])) from None
        finally:
            os.close(fd)
        return new, self.shown(names + [name])

    def open_file(self, path, flags=os.O_RDONLY):
        """(fd of the existing regular file ``path`` opened with ``flags``, its absolute path, stat).

        Refuses directories (IsADirectoryError), anything not a regular file
        (``not_regular``) and, in a confined tree, files with other hard links.
        """
        pfd, name, names = self.walk(path)
        try:
            shown = self.shown(names + [name]) if name else self.shown(names)
            if not name:
                raise IsADirectoryError(errno.EISDIR, "Is a directory", shown)
            return self.open_in(pfd, name, shown, flags, path)
        finally:
            os.close(pfd)

    def open_in(self, pfd, name, shown, flags, path):
        """Open the existing regular file ``name`` in the checked directory ``pfd``."""
        try:
            before = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            raise type(e)(e.errno, e.strerror, shown) from None
        self.check_regular(before, shown, path)
        try:
            fd = os.open(name, flags | O_FILE, dir_fd=pfd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise Refused(f"{shown} became a symbolic link while it was being opened; "
                              "try again", "symlink_escape", path) from None
            raise type(e)(e.errno, e.strerror, shown) from None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            os.close(fd)
            raise Refused(f"{shown} was replaced while it was being opened; try again",
                          "swapped", path)
        try:
            self.check_regular(st, shown, path)
        except Refused:
            os.close(fd)
            raise
        return fd, shown, st

    def check_regular(self, st, shown, path):
        """Refuse what is not a regular file, and (confined) what has other hard links."""
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", shown)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"{shown} is a {kind_of(st.st_mode).replace('_', ' ')}; only regular "
                          "files are read or written", "not_regular", path)
        if self.confined and st.st_nlink > 1:
            raise Refused(f"{shown} has {st.st_nlink} hard links: it may be another user's file "
                          "under a second name, so it is not opened; copy what you need into a "
                          "new file instead", "hardlink", path)


def _is_link(name, dir_fd):
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def kind_of(mode):
    """file, directory, symlink, fifo, socket, char_device, block_device or other."""
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"),
                       (stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "char_device"),
                       (stat.S_ISBLK, "block_device")):
        if test(mode):
            return name
    return "other"
