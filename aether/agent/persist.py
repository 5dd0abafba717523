"""Durable agents: the record of every agent spawned through the ABI, on the data partition.

    <data>/system/agents/<name>.json     one record per agent: root's, 0600, in a 0700 tree

An agent the shell, the host or another agent spawned (``agent.spawn``) is not
in any manifest directory, so without a record it would be gone after an
aetherd crash or a reboot.  Its record holds what it takes to declare it again
exactly as it was: its effective manifest (after what its parent gave it), its
parent and lineage, who spawned it, the owner of its name, how it last rested
and whether it was stopped on purpose.  Its spend is not copied here: the
ledger keeps it in the context store (aether/broker/spend.py), and a durable
child's account is kept there across the restart instead of being folded back.

Boot-manifest agents (owners ``image`` and ``system``) have no record: their
manifests declare them again at every boot; nor have deployed packages (owner
``package``): their own record declares them (aether/packages/install.py).

Records are written like the name registry (aether/agent/names.py): a
temporary file, fsync, rename, fsync of the directory, so a record answered
for survives a power cut.  They are read without following links, and only
when they are plain files of aetherd's uid that nobody else may read or write
(an agent's record says what runs and as whom).  A record that fails any rule
fails that agent alone, with the reason; the others load.
"""

import json
import os
import stat
import time

from . import manifest as _manifest
from .layout import replace_durably, sync_dir

VERSION = 1
RECORD_BYTES = 1 << 20              # a record is a manifest and a few names: far less than this
MAX_RECORDS = 10000                 # bounds the directory aetherd reads at start
SUFFIX = ".json"
ON_PURPOSE = ("request", "parent")  # stop reasons that keep an agent stopped across restarts


class RecordError(Exception):
    """A record cannot be used; the message says which file and why."""


def record_of(agent, owner, pgid_start=None):
    """The record of an Agent (machine.Agent) whose name belongs to owner."""
    m = agent.manifest
    return {"version": VERSION, "name": agent.name,
            "manifest": {k: v for k, v in m.values.items() if v is not None},
            "given": sorted(m.given), "parent": agent.parent, "lineage": list(agent.lineage),
            "spawned_by": agent.spawned_by, "owner": owner, "state": agent.state,
            "reason": agent.reason, "stopped_on_purpose": bool(getattr(agent, "stopped_on_purpose", False)),
            "starts": agent.starts, "last_exit": agent.last_exit, "last_error": agent.last_error,
            "pgid": getattr(agent, "pgid", None), "pgid_start": pgid_start,
            "saved_at": round(time.time(), 3)}


class Records:
    """The records under one directory (``system/agents``), one file per agent."""

    def __init__(self, directory, log):
        self.directory, self.log = directory, log

    def path(self, name):
        _manifest.check_name(name)
        return os.path.join(self.directory, name + SUFFIX)

    # -- writing --------------------------------------------------------------------

    def save(self, record):
        """Replace the agent's record atomically and durably (OSError when it cannot)."""
        replace_durably(self.path(record["name"]), json.dumps(record, sort_keys=True, indent=1).encode())

    def delete(self, name):
        try:
            os.unlink(self.path(name))
        except FileNotFoundError:
            return
        sync_dir(self.directory)

    # -- reading --------------------------------------------------------------------

    def load(self):
        """([record], [(file, reason)]): every usable record, and why each other one is not."""
        records, refused = [], []
        try:
            dfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return records, refused
        except OSError as e:
            return records, [(self.directory, f"cannot open the directory of agent records: {e.strerror} "
                                              "(it must be a directory of aetherd's, not a link)")]
        try:
            st = os.fstat(dfd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o077:
                return records, [(self.directory, "the directory of agent records may be used by others "
                                                  "than aetherd's uid (it must be its own, mode 0700); "
                                                  "no record was read")]
            entries = sorted(e for e in os.listdir(dfd) if e.endswith(SUFFIX))
            if len(entries) > MAX_RECORDS:
                refused.append((self.directory, f"{len(entries)} records, more than {MAX_RECORDS}: "
                                                f"only the first {MAX_RECORDS} are read"))
                entries = entries[:MAX_RECORDS]
            for entry in entries:
                try:
                    records.append(self._load_one(dfd, entry))
                except RecordError as e:
                    refused.append((os.path.join(self.directory, entry), str(e)))
        finally:
            os.close(dfd)
        return records, refused

    def _load_one(self, dfd, entry):
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        except OSError as e:
            raise RecordError(f"cannot open it: {e.strerror} (a record is never a link)") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise RecordError("not a plain file with one link; it is not read")
            if st.st_uid != os.geteuid() or st.st_mode & 0o077:
                raise RecordError(f"owned by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):04o}: a "
                                  f"record must be aetherd's own (uid {os.geteuid()}), mode 0600; it is "
                                  "not read")
            data = os.read(fd, RECORD_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > RECORD_BYTES:
            raise RecordError(f"larger than {RECORD_BYTES} bytes; it is not read")
        try:
            record = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise RecordError(f"not valid JSON: {e}") from None
        return check(record, entry[:-len(SUFFIX)])


def check(record, name):
    """The record, every field checked (RecordError says which one broke which rule)."""
    if not isinstance(record, dict) or record.get("version") != VERSION:
        raise RecordError(f"not an agent record of version {VERSION}")
    if record.get("name") != name:
        raise RecordError(f"it names the agent {record.get('name')!r}, but its file is {name}{SUFFIX}")
    try:
        _manifest.check_name(name)
    except _manifest.ManifestError as e:
        raise RecordError(str(e)) from None
    lineage, parent = record.get("lineage"), record.get("parent")
    if (not isinstance(lineage, list) or not lineage or lineage[-1] != name
            or not all(_manifest.is_name(n) for n in lineage) or len(set(lineage)) != len(lineage)):
        raise RecordError("lineage: a list of agent names from the top-level agent to this one")
    if parent != (lineage[-2] if len(lineage) > 1 else None):
        raise RecordError(f"parent {parent!r} is not the one before it in its lineage {lineage}")
    for field in ("owner", "state"):
        if not isinstance(record.get(field), str) or len(record[field]) > 200:
            raise RecordError(f"{field}: a string")
    if record["owner"] in ("image", "system"):
        raise RecordError(f"owner {record['owner']!r}: boot-manifest agents have no record")
    if parent is not None and record["owner"] != f"agent:{parent}":
        raise RecordError(f"owner {record['owner']!r}: a child's name belongs to agent:{parent}")
    given = record.get("given")
    if not isinstance(given, list) or not all(isinstance(g, str) for g in given):
        raise RecordError("given: a list of manifest field names")
    try:
        m = _manifest.from_dict(record.get("manifest"), origin=f"the record of {name}")
    except _manifest.ManifestError as e:
        raise RecordError(str(e)) from None
    if m.name != name:
        raise RecordError(f"its manifest declares {m.name!r}, not {name!r}")
    record["manifest"] = _manifest.Manifest(m.values, m.origin, given=set(given) & set(m.values))
    for field in ("starts", "last_exit", "pgid"):
        if record.get(field) is not None and (not isinstance(record[field], int)
                                              or isinstance(record[field], bool)):
            raise RecordError(f"{field}: an integer")
    return record


def process_start(pid):
    """The start time (clock ticks after boot) of process pid, or None: tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    try:
        fields = text[text.rindex(")") + 2:].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])     # a zombie is gone
    except (ValueError, IndexError):
        return None


class Durable:
    """The supervisor's durable agents: saved as they change, declared again at start.

    ``sup`` is the AgentSupervisor; it calls ``declared``, ``changed``, ``removed`` and,
    once the boot manifests are declared, ``restore``."""

    def __init__(self, sup, directory):
        self.sup = sup
        self.records = Records(directory, sup.log)
        self.usable = True
        try:
            from .layout import LayoutError, ensure_dir
            ensure_dir(directory, 0o700)
        except (LayoutError, OSError) as e:
            self.usable = False
            sup._notice(f"agents spawned through the ABI cannot be made durable ({e}): they are refused")
        self.loaded, self.refused = self.records.load() if self.usable else ([], [])
        # a durable child's spend account stays its own across the restart (aether/broker/spend.py)
        sup.ledger.durable = {f"agent:{r['name']}" for r in self.loaded if r["parent"] is not None}

    def durable(self, owner):
        from .names import BOOT
        return owner not in BOOT and owner != "package"     # packages: agents/<name>/record.json

    def declared(self, agent, owner):
        """A new agent: written before the spawn is answered (AgentError when it cannot be)."""
        if not self.durable(owner):
            return
        from .errors import AgentError
        agent.durable = True
        if not self.usable:
            raise AgentError("unavailable", f"{agent.name}: the data partition's system/agents cannot "
                                            "hold agent records; an agent spawned now would not survive a "
                                            "restart, so none is spawned (see the alerts)")
        try:
            self._save(agent)
        except OSError as e:
            agent.durable = False
            raise AgentError("unavailable", f"{agent.name}: its record could not be written "
                                            f"({e.strerror or e}); nothing was spawned") from None

    def changed(self, agent):
        if getattr(agent, "durable", False):
            try:
                self._save(agent)
            except OSError as e:
                self.sup.log.error(f"agents: the record of {agent.name} could not be written "
                                   f"({e.strerror or e}): after a restart it comes back as it was before")

    def removed(self, agent):
        if getattr(agent, "durable", False):
            try:
                self.records.delete(agent.name)
            except OSError as e:
                self.sup.log.error(f"agents: the record of {agent.name} could not be deleted ({e})")

    def _save(self, agent):
        start = getattr(agent, "pgid_start", None)
        record = record_of(agent, self.sup.names.owner(agent.name), start)
        record["at_shutdown"] = self.sup.shutting_down
        self.records.save(record)

    # -- at start ---------------------------------------------------------------------

    def restore(self):
        """Declare every recorded agent again (parents first) and start it as its record says.
        A record that cannot be used fails that agent alone, with an alert that says why."""
        for path, why in self.refused:
            self._alert(None, f"agent record {path} not used: {why}")
        restored = 0
        for record in sorted(self.loaded, key=lambda r: len(r["lineage"])):
            try:
                self._restore_one(record)
                restored += 1
            except Exception as e:  # noqa: BLE001 - one bad record must not stop the others
                self._alert(record["name"], f"agent {record['name']} was not restored from its record: {e}")
        if self.loaded or self.refused:
            self.sup.log.info(f"agents: {restored} of {len(self.loaded) + len(self.refused)} recorded "
                              "agent(s) restored")
        self.loaded, self.refused = [], []

    def _restore_one(self, record):
        from ..states import ACTIVE, EXITED, FAILED, NEVER, STOPPED
        _kill_leftover(record, self.sup.log)
        sup = self.sup
        agent = sup.declare(record["manifest"], record["parent"], record["spawned_by"], record["owner"],
                            restored=True)
        agent.starts = record.get("starts") or 0
        agent.last_exit, agent.last_error = record.get("last_exit"), record.get("last_error")
        state, was = record["state"], record.get("reason") or ""
        if record.get("stopped_on_purpose"):
            agent.stopped_on_purpose = True
            return agent._set(STOPPED, f"stopped on purpose before aetherd restarted ({was}); "
                                       "agent.start starts it")
        if state in (EXITED, FAILED):
            return agent._set(state, f"{was} (before aetherd restarted)")
        if state == STOPPED and not record.get("at_shutdown"):
            return agent._set(STOPPED, f"{was} (before aetherd restarted)")
        crashed = state in ACTIVE | {"waiting", "starting", "backoff"} and not record.get("at_shutdown")
        if crashed and agent.manifest.restart == NEVER:
            agent.last_error = "it was running when aetherd stopped without a shutdown"
            return agent._set(FAILED, "was running when aetherd stopped without a shutdown; restart = "
                                      "never, so it is not started again (agent.start starts it)")
        sup.start(agent.name)

    def _alert(self, agent, message):
        self.sup.log.warning(f"agents: {message}")
        self.sup.publish({"kind": "alert", "level": "critical", "message": message, "agent": agent,
                          "source": "aetherd", "data": None})


def _kill_leftover(record, log):
    """Without cgroups, a crashed aetherd's agents keep running: kill the recorded process group,
    if the process there is still the one recorded (same start time: not a reused pid)."""
    pgid, start = record.get("pgid"), record.get("pgid_start")
    if not pgid or pgid <= 1 or start is None or process_start(pgid) != start:
        return
    import signal
    log.warning(f"agents: {record['name']} was left running by a previous aetherd (process group "
                f"{pgid}); killing it (it runs unsupervised)")
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        return
    deadline = time.monotonic() + 5
    while process_start(pgid) == start and time.monotonic() < deadline:
        time.sleep(0.02)
