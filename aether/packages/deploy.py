"""aetherd's side of agent packages: commit, switching versions, rollback, restore at start.

An upload (``package.begin`` / ``package.chunk``, the privileged only:
aether/abi/calls/package.py) is bounded by staging.py and staged in ``system/uploads/``;
before it is staged, its declared size must fit on the data partition beyond the system's
reserve twice (the staged archive and the unpacked files).

Commit verifies every hash (format.unpack), checks the manifest, the name's owner and
the disk space, installs the version (install.py), then switches: the running version
is stopped (with its stop timeout) and removed from the table, the new one declared
(owner ``package``) and started, and the record's ``current`` replaced durably.  The
answer waits until the new version runs or fails; a version that fails to start (an
import error, a crash loop that ends ``failed``) is rolled back to the previous one,
with an alert that says why.  Deployed agents are declared again at every start of
aetherd from their records (``restore``).
"""

import os
import time

from ..agent import manifest as _manifest
from ..agent.layout import ensure_dir
from ..states import EXITED, FAILED, RESTING, RUNNING, STOPPED
from . import format as fmt
from .install import InstallError, Installed, free_bytes, version_key
from .staging import DeployError, Uploads

START_WAIT = 30.0              # seconds a commit or rollback waits for the new version to run
POLL = 0.05
OWNER = "package"
IMAGE_PACKAGES = "/usr/lib/aether/packages"      # make image AGENTS=... (scripts/aetherbuild/packages.py)


class Deployer:
    """One per aetherd (``d.packages``): its uploads and its view of agents/ on the data partition."""

    def __init__(self, d):
        self.d, self.sup = d, d.supervisor
        self.installed = Installed(d.data_dir)
        self.busy = set()                # agents being switched: one switch at a time each
        self.staging = os.path.join(self.sup.layout.system, "uploads")
        self.staged = Uploads(d.loop, self.sup.log, self.staging, self._prepare_upload)
        d.events.subscribers.append(self._on_event)
        d.server.on_close.append(self.staged.on_close)

    # -- uploads (staging.py) -------------------------------------------------------------

    @property
    def uploads(self):
        return self.staged.active

    def begin(self, caller, conn, size, sha256):
        return self.staged.begin(caller, conn, size, sha256)

    def chunk(self, caller, offset, data):
        return self.staged.chunk(caller, offset, data)

    def abort(self, caller):
        return self.staged.abort(caller)

    def _prepare_upload(self, size):
        self._ready()
        self._check_space(2 * size, f"a package of {size} bytes (staged, then unpacked)")

    def _ready(self):
        if self.sup.broken or not self.sup.layout.migrated():
            why = self.sup.broken or "the data partition's layout is not in place"
            raise DeployError("unavailable", f"packages cannot be installed: {why}")
        try:
            ensure_dir(self.staging, 0o700)
            self.installed.prepare()
        except (OSError, InstallError) as e:
            raise DeployError("unavailable", f"packages cannot be installed: {e}") from None

    def _check_space(self, needed, what):
        free = free_bytes(self.installed.root if os.path.isdir(self.installed.root) else self.d.data_dir)
        if needed > free:
            raise DeployError("unavailable", f"too big for the data partition: {what} needs {needed} bytes, "
                                             f"{free} are free beyond the system's reserve; remove old "
                                             "versions or agents' files, or use a larger data disk")

    # -- commit ------------------------------------------------------------------------

    def commit(self, caller, answer, allow=()):
        """Verify, install and switch; ``answer(result, error)`` once the new version runs or fails.
        A package whose manifest asks for grants (root, net, unconfined) is installed only when
        the deployer allowed each of them (``allow``): typing 'deploy' is not giving root."""
        upload = self.staged.take(caller)
        try:
            os.close(upload.fd)
            upload.fd = None
            if upload.received != upload.size:
                raise DeployError("invalid", f"{upload.received} of {upload.size} bytes arrived; send the "
                                             "rest before package.commit")
            if upload.hash.hexdigest() != upload.sha256:
                raise DeployError("invalid", f"hash mismatch: the upload hashes to {upload.hash.hexdigest()}, "
                                             f"package.begin declared {upload.sha256}; send it again")
            index, pm, fresh = self._install(upload.path, allow)
        finally:
            upload.drop()
        self._deploy(caller.principal, index, pm, fresh, answer)

    def _install(self, path, allow=()):
        origin = "the package"
        try:
            with open(path, "rb") as f:
                index, pm = fmt.unpack(f, origin)
        except fmt.PackageError as e:
            raise DeployError("invalid", f"package refused: {e}") from None
        wanted = sorted(set(pm.manifest.values.get("grant") or ()) - set(allow))
        if wanted:
            raise DeployError("permission", f"{pm.label} asks for {', '.join(wanted)} "
                                            f"(user = {pm.manifest.values.get('user')!r}, grant in agent.toml); "
                                            "nothing was installed: if you mean to give it that, deploy "
                                            f"again with --allow {','.join(wanted)}")
        self._check_owner(pm.name)
        self._check_fits(pm)
        record = self._record(pm.name)
        known = record["versions"].get(pm.version)
        if known is not None:
            if known["sha256"] != index.sha256:
                raise DeployError("conflict", f"{pm.label} is installed already with other contents "
                                              f"(sha256 {known['sha256'][:12]}, this one {index.sha256[:12]}); "
                                              "bump version in agent.toml and pack again")
            return index, pm, False
        self._check_space(index.size + (1 << 20), f"{pm.label} ({index.size} bytes unpacked)")
        try:
            with open(path, "rb") as f:
                pm = self.installed.install(f, origin, index)
        except fmt.PackageError as e:
            raise DeployError("invalid", f"package refused: {e}") from None
        except (OSError, InstallError) as e:
            raise DeployError("unavailable", f"{pm.label} could not be installed: {e}") from None
        record["versions"][pm.version] = {"sha256": index.sha256, "size": index.size,
                                          "installed_at": round(time.time(), 3), "status": "installed"}
        self._save(record)
        return index, pm, True

    def _check_fits(self, pm):
        """Refused before the running version is stopped: a manifest that could never start."""
        from ..agent import bounds
        from ..agent.errors import AgentError
        try:
            bounds.fits_pool(pm.manifest, self.sup.memory_pool)
        except AgentError as e:
            raise DeployError("invalid", f"package refused: {e}") from None

    def _check_owner(self, name):
        owner = self.sup.names.owner(name)
        if owner not in (None, OWNER):
            raise DeployError("conflict", f"the name {name!r} belongs to {owner} (an agent not deployed as a "
                                          "package); choose another name in agent.toml")

    def _deploy(self, principal, index, pm, fresh, answer):
        name, record = pm.name, self._record(pm.name)
        agent = self.sup.agents.get(name)
        if record["current"] == pm.version and agent is not None and agent.state not in RESTING and not fresh:
            return answer({"name": name, "version": pm.version, "sha256": index.sha256, "changed": False,
                           "state": agent.state,
                           "message": f"{pm.label} is installed and current already: nothing to do"}, None)
        previous = record["current"]
        self.switch(name, pm.version, principal, reason=f"deployed by {principal}",
                    answer=answer, trial_from=previous)

    # -- switching ---------------------------------------------------------------------

    def switch(self, name, version, principal, reason, answer, trial_from=None, rollback=False):
        """Stop the running version, make ``version`` current and start it; answer when it runs
        or has failed (then the version before comes back, if there is one)."""
        if name in self.busy:
            return answer(None, DeployError("conflict", f"{name} is being switched already; wait for it"))
        self.busy.add(name)
        agent = self.sup.agents.get(name)
        if agent is not None and agent.state not in RESTING:
            self.sup.stop(name, "deploy")
        deadline = time.monotonic() + self.sup.stop_timeout + 10

        def stopped():
            current = self.sup.agents.get(name)
            if current is not None and current.state not in RESTING and time.monotonic() < deadline:
                return self.d.loop.call_later(POLL, stopped)
            try:
                self._start(name, version, principal, trial_from, rollback)
            except DeployError as e:
                self.busy.discard(name)
                return answer(None, self._restart_previous(name, version, trial_from, e))
            self._await_start(name, version, reason, answer, deadline=time.monotonic() + START_WAIT)
        stopped()

    def _start(self, name, version, principal, trial_from, rollback):
        try:
            pm = self.installed.load(name, version)
        except InstallError as e:
            raise DeployError("unavailable", str(e)) from None
        output = self.sup.logs.get(name)          # one output buffer across versions (agent.logs)
        if name in self.sup.agents:
            if self.sup.agents[name].state not in RESTING:
                raise DeployError("conflict", f"{name} did not stop; {version} was not started")
            self.sup.remove(name)
        record = self._record(name)
        if not rollback:
            record["history"] = [v for v in record["history"] if v != version] + [version]
            record["rollback_to"] = trial_from if trial_from != version else None
        record["current"] = version
        self.installed.prune(record)
        self._save(record)
        self._declare(pm, version, principal, output=output)

    def _restart_previous(self, name, version, previous, error):
        """The new version could not even be declared: the one it replaced runs again."""
        if not previous or previous == version or name in self.sup.agents:
            return error
        try:
            self._fail_version(name, version, str(error))
            self._start(name, previous, "system", None, rollback=True)
        except DeployError as e:
            return DeployError(error.kind, f"{error}; and {previous} could not be started again: {e}")
        return DeployError(error.kind, f"{error}; {previous} is started again")

    def _declare(self, pm, version, principal, start=True, output=None):
        from ..agent.errors import AgentError
        try:
            agent = self.sup.declare(pm.manifest, spawned_by=principal, owner=OWNER)
        except AgentError as e:
            raise DeployError(e.kind, f"{pm.label} cannot be declared: {e}") from None
        if output is not None:
            self.sup.logs[pm.name] = output
        agent.package = self.installed.version_dir(pm.name, version)
        agent.package_version = version
        if start:
            self.sup.start(pm.name)
        else:
            agent.stopped_on_purpose = True
            agent.reason = "stopped on purpose before aetherd restarted; agent.start starts it"

    def _await_start(self, name, version, reason, answer, deadline):
        agent = self.sup.agents.get(name)
        state = agent.state if agent is not None else None
        if state not in (RUNNING, EXITED, *RESTING) and time.monotonic() < deadline:
            return self.d.loop.call_later(POLL, lambda: self._await_start(name, version, reason, answer,
                                                                          deadline))
        self.busy.discard(name)
        if state in (RUNNING, EXITED) or state not in RESTING:
            self._mark(name, version, "ok" if state in (RUNNING, EXITED) else "installed")
            return answer({"name": name, "version": version, "changed": True, "state": state,
                           "message": f"{name}-{version} is current ({reason}): {state}"}, None)
        why = self._why(agent)
        back = self._fail_version(name, version, why)
        text = f"{name}-{version} failed to start: {why}"
        if back:
            self.switch(name, back, "system", reason=f"rolled back: {version} failed",
                        answer=lambda _r, _e: None, rollback=True)
            text += f"; {back} is started again"
        else:
            text += "; there is no earlier version to return to"
        self._alert(name, text)
        answer(None, DeployError("failed", text))

    def _why(self, agent):
        if agent is None:
            return "it left the table"
        logs = list(self.sup.logs.get(agent.name, ()))[-3:]
        return (agent.reason or agent.last_error or agent.state) + (f" (last output: {' | '.join(logs)})"
                                                                    if logs else "")

    def _fail_version(self, name, version, why):
        """Mark version failed; returns the version to go back to (None: none), made current."""
        record = self._record(name)
        back = record.get("rollback_to")
        record["versions"][version]["status"] = f"failed: {why[:300]}"
        record["history"] = [v for v in record["history"] if v != version]
        record["rollback_to"] = None
        record["current"] = back
        if back is None and name in self.sup.agents and self.sup.agents[name].state in RESTING:
            self.sup.remove(name)
        self._save(record)
        return back

    def _on_event(self, event):
        """A deployed version that ends ``failed`` later (a crash loop) is rolled back, once;
        one stopped on purpose (agent.stop) stays stopped across restarts of aetherd."""
        if event.get("kind") != "agent.state":
            return
        name = event.get("agent")
        agent = self.sup.agents.get(name)
        if agent is None or getattr(agent, "package_version", None) is None:
            return
        if event.get("state") in (STOPPED, RUNNING):
            self.d.loop.call_soon(lambda: self._note_stopped(name, event["state"] == STOPPED
                                                             and bool(getattr(agent, "stopped_on_purpose", False))))
        if event.get("state") == FAILED and name not in self.busy:
            self.d.loop.call_soon(lambda: self._crashed(name, agent.package_version))

    def _note_stopped(self, name, stopped):
        try:
            record = self._record(name)
            if record["versions"] and bool(record.get("stopped")) != stopped:     # none: uninstalled
                record["stopped"] = stopped
                self._save(record)
        except DeployError as e:
            self.sup.log.warning(f"packages: {e}")

    def _crashed(self, name, version):
        agent = self.sup.agents.get(name)
        if name in self.busy or agent is None or agent.state != FAILED:
            return
        try:
            record = self._record(name)
        except DeployError:
            return
        if record["current"] != version or not record.get("rollback_to"):
            return
        why = self._why(agent)
        back = self._fail_version(name, version, why)
        self._alert(name, f"{name}-{version} failed within its intensity window ({why}): rolled back to {back}")
        self.switch(name, back, "system", reason=f"rolled back: {version} failed",
                    answer=lambda _r, _e: None, rollback=True)

    # -- rollback, listing, restore ------------------------------------------------------

    def rollback(self, caller, name, answer):
        record = self._record(name)
        if record["current"] is None or len(record["history"]) < 2:
            raise DeployError("conflict", f"{name} has no earlier version to return to "
                                          f"(installed: {', '.join(self._sorted(record)) or 'none'})")
        current, back = record["current"], record["history"][-2]
        record["history"] = [v for v in record["history"] if v != current]
        record["rollback_to"] = None
        record["versions"][current]["status"] = f"rolled back by {caller.principal}"
        self._save(record)
        self.switch(name, back, caller.principal, reason=f"rolled back from {current} by {caller.principal}",
                    answer=answer, rollback=True)

    def remove(self, caller, name, answer):
        """Stop the agent, take it out of the table and uninstall every version of it."""
        record = self._record(name)
        if not record["versions"]:
            raise DeployError("conflict", f"no package {name!r} is installed (package.list shows them)")
        if name in self.busy:
            raise DeployError("conflict", f"{name} is being switched; wait for it")
        self.busy.add(name)
        agent = self.sup.agents.get(name)
        if agent is not None and agent.state not in RESTING:
            self.sup.stop(name, "request")
        deadline = time.monotonic() + self.sup.stop_timeout + 10

        def stopped():
            current = self.sup.agents.get(name)
            if current is not None and current.state not in RESTING and time.monotonic() < deadline:
                return self.d.loop.call_later(POLL, stopped)
            self.busy.discard(name)
            if current is not None:
                if current.state not in RESTING:
                    return answer(None, DeployError("conflict", f"{name} did not stop; nothing was removed"))
                self.sup.remove(name)
            try:
                self.installed.uninstall(name)
            except OSError as e:
                return answer(None, DeployError("unavailable", f"{name}: its files could not all be "
                                                               f"removed ({e}); the record is gone"))
            answer({"name": name, "removed": sorted(record["versions"], key=version_key),
                    "message": f"{name} removed by {caller.principal}: versions "
                               f"{', '.join(self._sorted(record))} uninstalled"}, None)
        stopped()

    def listing(self):
        out = []
        for name in self.installed.names():
            try:
                record = self._record(name)
            except DeployError as e:
                out.append({"name": name, "problem": str(e)})
                continue
            agent = self.sup.agents.get(name)
            out.append({"name": name, "current": record["current"], "state": agent.state if agent else None,
                        "rollback_to": record.get("rollback_to"), "history": record["history"],
                        "versions": [{"version": v, **record["versions"][v]} for v in self._sorted(record)]})
        return out

    def restore(self):
        """Declare and start the current version of every deployed agent (aetherd's start),
        after installing what the image bakes in (``seed``)."""
        try:
            self.installed.clear_staging()
        except OSError as e:
            self.sup.log.warning(f"packages: staging directories not cleared: {e}")
        self.seed(os.environ.get("AETHER_IMAGE_PACKAGES", IMAGE_PACKAGES))
        for name in self.installed.names():
            try:
                record = self._record(name)
                if record["current"] and name not in self.sup.agents:
                    self._declare(self.installed.load(name, record["current"]), record["current"], "system",
                                  start=not record.get("stopped"))
            except (DeployError, InstallError) as e:
                self._alert(name, f"deployed agent {name} not started: {e}")

    def seed(self, directory):
        """Install the image's packages (``make image AGENTS=...``): one whose agent has no
        version installed, or only older ones, becomes current; a version deployed later,
        or the same one, wins.  A bad one is refused with an alert; the others go on."""
        try:
            entries = sorted(e for e in os.listdir(directory) if e.endswith(fmt.SUFFIX))
        except OSError:
            return
        try:
            self._ready()
        except DeployError as e:
            return self._alert(None, f"the image's packages are not installed: {e}")
        for entry in entries:
            try:
                self._seed_one(os.path.join(directory, entry))
            except (DeployError, fmt.PackageError, InstallError, OSError) as e:
                self._alert(None, f"the image's package {entry} is not installed: {e}")

    def _seed_one(self, path):
        with open(path, "rb") as f:
            index, pm = fmt.unpack(f, os.path.basename(path))
        record = self._record(pm.name)
        if pm.version in record["versions"] or any(version_key(v) >= version_key(pm.version)
                                                   for v in record["versions"]):
            return
        self._check_owner(pm.name)
        _index, pm, _fresh = self._install(path, _manifest.GRANTS)   # baked in: the builder's choice
        record = self._record(pm.name)
        record["history"] = [v for v in record["history"] if v != pm.version] + [pm.version]
        record["rollback_to"], record["current"] = record["current"], pm.version
        record["versions"][pm.version]["status"] = "from the image"
        self._save(record)
        self.sup.log.info(f"packages: {pm.label} installed from the image")

    # -- plumbing ----------------------------------------------------------------------

    @staticmethod
    def _sorted(record):
        return sorted(record["versions"], key=version_key)

    def _record(self, name):
        try:
            return self.installed.record(name)
        except InstallError as e:
            raise DeployError("unavailable", str(e)) from None

    def _save(self, record):
        try:
            self.installed.save(record)
        except InstallError as e:
            raise DeployError("unavailable", str(e)) from None

    def _mark(self, name, version, status):
        try:
            record = self._record(name)
            if version in record["versions"] and not record["versions"][version]["status"].startswith("failed"):
                record["versions"][version]["status"] = status
                self._save(record)
        except DeployError as e:
            self.sup.log.warning(f"packages: {e}")

    def _alert(self, name, message):
        self.sup.log.warning(f"packages: {message}")
        self.sup.publish({"kind": "alert", "level": "critical", "message": message, "agent": name,
                          "source": "aetherd", "data": None})


def of(d):
    """The daemon's Deployer, made on first use."""
    deployer = getattr(d, "packages", None)
    if deployer is None:
        deployer = d.packages = Deployer(d)
    return deployer


def restore(d):
    """At aetherd's start, after the boot manifests and the durable agents."""
    of(d).restore()
