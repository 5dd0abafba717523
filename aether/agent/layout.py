"""Where aetherd keeps agents' things on the data partition, kept apart from what it reads.

    <data>/home/<name>/     each agent's home: its uid, 0700 (the tree is root's, 0711)
    <data>/manifests/       manifests aetherd starts at boot: root's, 0700
    <data>/system/          aetherd's own state (names.json): root's, 0700
    <data>/system/agents/   the records of agents spawned through the ABI (persist.py): 0700
    <data>/agents/          reserved for installed agent packages (agents/<name>/<version>/)

No path aetherd reads is inside a tree an agent can write, and an agent's name
is only ever the last component of a path under ``home/`` (names are checked
and reserved words refused by aether.agent.manifest.name).

The old layout kept homes at ``agents/<name>`` next to a manifest directory
``agents/manifests`` and a uid table ``agents/uids``: an agent named
``manifests`` could plant a manifest for the next boot.  ``migrate`` moves
that layout once, trusting nothing an agent could have written: a legacy
manifest is kept only if it and its directory are root's and writable by
nobody else; anything else is left unread, and an alert says so.
"""

import os
import stat
import time

from . import manifest as _manifest

HOME, MANIFESTS, SYSTEM, PACKAGES = "home", "manifests", "system", "agents"
VERSION = "2"                      # system/layout: the layout this data partition is in


class LayoutError(Exception):
    """A directory aetherd needs is missing and cannot be made, or is not what it must be."""


def _only_ours(st):
    """Owned by aetherd's uid, and nobody else may write it."""
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def ensure_dir(path, mode):
    """A real directory (not a link), owned by aetherd's uid, with exactly mode."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    except OSError as e:
        raise LayoutError(f"cannot create {path}: {e.strerror}") from None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise LayoutError(f"{path} is not a directory owned by aetherd's uid {os.geteuid()} "
                          "(it may have been planted); move it away and restart aetherd")
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)
    return path


class Layout:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.homes = os.path.join(data_dir, HOME)
        self.manifests = os.path.join(data_dir, MANIFESTS)
        self.system = os.path.join(data_dir, SYSTEM)
        self.legacy = os.path.join(data_dir, PACKAGES)

    def home(self, name):
        """The home of the agent called name (the name is checked: it cannot lead elsewhere)."""
        _manifest.name("agent", "name", name)
        return os.path.join(self.homes, name)

    def names_file(self):
        return os.path.join(self.system, "names.json")

    def records(self):
        """The directory of durable agents' records (aether/agent/persist.py)."""
        return os.path.join(self.system, "agents")

    def prepare(self):
        """Make the root-owned trees (home 0711, manifests and system 0700)."""
        os.makedirs(self.data_dir, exist_ok=True)
        ensure_dir(self.system, 0o700)
        ensure_dir(self.manifests, 0o700)
        ensure_dir(self.homes, 0o711)

    def migrated(self):
        try:
            with open(os.path.join(self.system, "layout")) as f:
                return f.read().strip() == VERSION
        except OSError:
            return False

    def migrate(self, alert):
        """Move the old layout once.  Returns {name: uid or None} of the legacy names found.

        alert(message) reports what was refused; it is never run."""
        found = {}
        if not self.migrated():
            legacy = _real_dir(self.legacy)
            if legacy:
                found = self._move_legacy(alert)
        return found

    def mark_migrated(self):
        replace_durably(os.path.join(self.system, "layout"), VERSION.encode() + b"\n")

    def _move_legacy(self, alert):
        uids = self._legacy_uids(alert)
        names = {}
        manifests = os.path.join(self.legacy, MANIFESTS)
        if _real_dir(manifests):
            self._move_manifests(manifests, alert)
        for entry in sorted(os.listdir(self.legacy)):
            source = os.path.join(self.legacy, entry)
            if not _real_dir(source) or not _valid_name(entry, reserved_ok=True):
                continue
            target = os.path.join(self.homes, entry)
            if os.path.lexists(target):
                alert(f"legacy home {source} was not moved: {target} exists already")
                continue
            os.rename(source, target)
            if _valid_name(entry):
                names[entry] = uids.get(entry)
        for name, uid in uids.items():
            if _valid_name(name):
                names.setdefault(name, uid)
        return names

    def _legacy_uids(self, alert):
        """{name: uid} from the old agents/uids, if aetherd wrote it (root's, a plain file)."""
        path = os.path.join(self.legacy, "uids")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return {}
        try:
            st = os.fstat(fd)
            if not (stat.S_ISREG(st.st_mode) and _only_ours(st) and st.st_nlink == 1):
                alert(f"legacy uid table {path} is not aetherd's own file; ignored")
                return {}
            text = os.read(fd, 1 << 20).decode("utf-8", "replace")
        finally:
            os.close(fd)
        uids = {}
        for line in text.splitlines():
            name, _, uid = line.partition(" ")
            if _valid_name(name) and uid.strip().isdigit():
                uids[name] = int(uid)
        os.unlink(path)
        return uids

    def _move_manifests(self, directory, alert):
        """Keep the legacy manifests root placed; refuse (and leave) everything else."""
        st = os.lstat(directory)
        refused = []
        if not _only_ours(st):
            entries = sorted(os.listdir(directory))
            alert(f"legacy manifest directory {directory} is writable by uid {st.st_uid} or others "
                  f"(an agent named 'manifests' may have owned it): its {len(entries)} file(s) are NOT "
                  f"run; they stay in {os.path.join(self.homes, MANIFESTS)} for inspection")
            return
        for entry in sorted(os.listdir(directory)):
            source = os.path.join(directory, entry)
            fst = os.lstat(source)
            if not (entry.endswith(".toml") and stat.S_ISREG(fst.st_mode) and _only_ours(fst)
                    and fst.st_nlink == 1):
                refused.append(entry)
                continue
            target = os.path.join(self.manifests, entry)
            if os.path.lexists(target):
                refused.append(entry)
                continue
            os.rename(source, target)
        if refused:
            alert(f"legacy manifests not moved to {self.manifests} (not aetherd's own plain .toml "
                  f"files, or already there): {', '.join(refused)}; they are NOT run")
        else:
            os.rmdir(directory)


def _real_dir(path):
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _valid_name(name, reserved_ok=False):
    try:
        _manifest.check_name(name, reserved_ok=reserved_ok)
        return True
    except _manifest.ManifestError:
        return False


def replace_durably(path, data, mode=0o600):
    """Replace the file at ``path`` with ``data``, atomically and durably (OSError when it
    cannot): a new temporary file (``O_EXCL | O_NOFOLLOW``: a link planted at its name is
    never written through), fsync, rename over ``path``, fsync of the directory.  The
    temporary name is new each time: after a power cut the same pid comes back, and a
    leftover file must not block every later write."""
    tmp = f"{path}.{os.getpid()}.{time.time_ns()}.{time.monotonic_ns()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    sync_dir(os.path.dirname(path))


def sync_dir(directory):
    """fsync a directory, so a rename or unlink in it survives a power cut."""
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
