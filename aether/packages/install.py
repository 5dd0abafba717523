"""Installed agent packages on the data partition (the tree aether/agent/layout.py reserved).

    <data>/agents/                      root's, 0711
    <data>/agents/<name>/               root's, 0711: one agent's installed versions
    <data>/agents/<name>/<X.Y.Z>/       one version's files, root's, read-only to others
                                        (0755 directories, 0644/0755 files); never changed
    <data>/agents/<name>/record.json    the agent's record: root's, 0600, replaced durably

The record says which version is current, what each installed version is (its package
sha256, size, when it was installed and how it fared), the order versions were made
current in (``history``: rollback walks back along it) and ``rollback_to``, the version
an automatic rollback returns to if the current one fails.  Every switch is one
``layout.replace_durably`` of the record: a power cut leaves the old or the new record,
never half of one.  A version is unpacked into a hidden staging directory and renamed to
its name only when every file is written and every hash checked.

Nothing in this tree is written by an agent, and names and versions are checked before
they become path components.  At most KEEP versions of an agent stay installed.
"""

import json
import os
import shutil
import stat
import time

from ..agent import manifest as _manifest
from ..agent.layout import LayoutError, ensure_dir, replace_durably, sync_dir
from . import format as fmt

RECORD = "record.json"
RECORD_BYTES = 1 << 20
KEEP = 4                      # installed versions of one agent (the oldest unused one goes first)
STAGING = ".staging-"


class InstallError(Exception):
    """An install, switch or record cannot be done; the message says why and what to do."""


def version_key(version):
    return tuple(int(p) for p in version.split("."))


class Installed:
    """The ``agents/`` tree of one data partition."""

    def __init__(self, data_dir):
        self.root = os.path.join(data_dir, "agents")

    def prepare(self):
        try:
            ensure_dir(self.root, 0o711)
        except (LayoutError, OSError) as e:
            raise InstallError(f"the package tree {self.root} cannot be used: {e}") from None

    def agent_dir(self, name):
        _manifest.check_name(name)
        return os.path.join(self.root, name)

    def version_dir(self, name, version):
        if not fmt.VERSION.match(version):
            raise InstallError(f"{version!r} is not a version (X.Y.Z)")
        return os.path.join(self.agent_dir(name), version)

    # -- records -------------------------------------------------------------------------

    def names(self):
        """The agents with a record, sorted."""
        try:
            entries = sorted(os.listdir(self.root))
        except OSError:
            return []
        return [e for e in entries if _manifest.is_name(e) and os.path.isfile(os.path.join(self.root, e, RECORD))]

    def record(self, name):
        """The agent's record (a fresh one when it has none); InstallError when it is not aetherd's."""
        path = os.path.join(self.agent_dir(name), RECORD)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return {"name": name, "current": None, "versions": {}, "history": [], "rollback_to": None}
        except OSError as e:
            raise InstallError(f"{path}: cannot be read: {e.strerror} (a record is never a link)") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
                raise InstallError(f"{path}: not aetherd's own 0600 file; it is not trusted (move it away)")
            data = os.read(fd, RECORD_BYTES + 1)
        finally:
            os.close(fd)
        try:
            record = json.loads(data)
        except ValueError as e:
            raise InstallError(f"{path}: not valid JSON ({e}); move it away and deploy again") from None
        return _checked(record, name, path)

    def save(self, record):
        directory = self.agent_dir(record["name"])
        try:
            replace_durably(os.path.join(directory, RECORD),
                            json.dumps(record, sort_keys=True, indent=1).encode())
        except OSError as e:
            raise InstallError(f"the record of {record['name']} cannot be written: {e.strerror or e}") from None

    # -- versions ------------------------------------------------------------------------

    def install(self, fileobj, origin, index):
        """Unpack a verified-size archive as agents/<name>/<version>/; returns its PackageManifest.
        Every file is written beneath a fresh staging directory, then renamed into place."""
        directory = self.agent_dir(index.name)
        try:
            ensure_dir(directory, 0o711)
        except (LayoutError, OSError) as e:
            raise InstallError(str(e)) from None
        staging = os.path.join(directory, f"{STAGING}{index.version}-{os.getpid()}-{time.time_ns()}")
        os.mkdir(staging, 0o700)
        try:
            fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                _index, pm = fmt.unpack(fileobj, origin, dest_fd=fd)
                os.fsync(fd)
                os.fchmod(fd, 0o755)
            finally:
                os.close(fd)
            os.rename(staging, self.version_dir(index.name, index.version))
            sync_dir(directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return pm

    def load(self, name, version):
        """The PackageManifest of an installed version (its agent.toml, checked again)."""
        directory = self.version_dir(name, version)
        path = os.path.join(directory, fmt.MANIFEST)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                data = f.read(fmt.MAX_MANIFEST + 1)
        except OSError as e:
            raise InstallError(f"{name} {version}: {path} cannot be read ({e.strerror}); deploy it again") from None
        try:
            pm = fmt.parse_manifest(data, path)
        except fmt.PackageError as e:
            raise InstallError(str(e)) from None
        if (pm.name, pm.version) != (name, version):
            raise InstallError(f"{path} declares {pm.label}, not {name}-{version}; deploy it again")
        return pm

    def remove_version(self, name, version):
        path = self.version_dir(name, version)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
            sync_dir(self.agent_dir(name))

    def uninstall(self, name):
        """Every version of an agent and its record: the record goes first (durably), so a
        crash part-way leaves no record that points at missing files."""
        directory = self.agent_dir(name)
        try:
            os.unlink(os.path.join(directory, RECORD))
            sync_dir(directory)
        except FileNotFoundError:
            pass
        if os.path.isdir(directory) and not os.path.islink(directory):
            shutil.rmtree(directory)
            sync_dir(self.root)

    def clear_staging(self):
        """Staging directories a crash left behind."""
        for name in self.names():
            directory = self.agent_dir(name)
            for entry in os.listdir(directory):
                if entry.startswith(STAGING):
                    shutil.rmtree(os.path.join(directory, entry), ignore_errors=True)

    def prune(self, record):
        """Past KEEP installed versions, remove the oldest that is neither current nor the
        one a rollback would return to.  Returns the versions removed."""
        removed = []
        keep = {record["current"], record.get("rollback_to"), *record["history"][-2:]}
        while len(record["versions"]) > KEEP:
            old = sorted((v for v in record["versions"] if v not in keep),
                         key=lambda v: record["versions"][v].get("installed_at", 0))
            if not old:
                break
            self.remove_version(record["name"], old[0])
            del record["versions"][old[0]]
            record["history"] = [v for v in record["history"] if v != old[0]]
            removed.append(old[0])
        return removed


def _checked(record, name, path):
    ok = (isinstance(record, dict) and record.get("name") == name
          and isinstance(record.get("versions"), dict) and isinstance(record.get("history"), list)
          and all(isinstance(v, str) and fmt.VERSION.match(v) for v in record["versions"])
          and all(v in record["versions"] for v in record["history"])
          and record.get("current") in (None, *record["versions"])
          and record.get("rollback_to") in (None, *record["versions"]))
    if not ok:
        raise InstallError(f"{path}: not a package record of agent {name}; move it away and deploy again")
    return record


def free_bytes(path):
    """Bytes a privileged write may still use on path's file system, keeping the system's reserve."""
    from ..diskspace import reserve_bytes
    st = os.statvfs(path)
    return max(0, st.f_bavail * st.f_frsize - reserve_bytes(st))
