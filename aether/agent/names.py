"""Agent names as identities: who owns each name, and the uid that goes with it.

A name outlives its agent: the context scope ``agent:<name>``, the home
``home/<name>`` and the files its uid owns all stay after the agent is removed
or the machine restarts.  So a name is declared once and keeps an *owner*, the
principal that declared it first:

* ``image``: a manifest in /etc/aether/agents (the image's built-ins);
  ``system``: a manifest in the data partition's root-owned manifests directory;
* ``shell`` / ``host``: a top-level agent spawned by the person at the console or
  by the host;
* ``agent:<parent>``: a child, spawned below ``parent`` (by it, an ancestor of it,
  or the privileged);
* ``legacy``: a name found on the data partition from before owners were kept
  (only a boot manifest, or an explicit reclaim, may take it).

A name is declared again only by its owner.  The privileged may take a name
over, explicitly (``agent.spawn reclaim=true``), and the takeover is journalled.

The registry is ``system/names.json`` on the data partition: a root-owned file
in a root-only directory, replaced atomically (a temporary file, fsync, rename,
fsync of the directory), so an answered declaration survives a power cut.
"""

import json
import os
import time

from .layout import replace_durably

FIRST_UID = 10000
LAST_UID = 59999
IMAGE, SYSTEM, LEGACY = "image", "system", "legacy"
BOOT = frozenset({IMAGE, SYSTEM})        # root-placed manifests: either may take the other's names
PER_TREE = 1000        # names one top-level agent's subtree may hold (names are never given back)


class NameRefused(Exception):
    """A name cannot be claimed (``kind``: conflict, unavailable)."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def may_claim(owner, claimant):
    """May claimant declare a name whose recorded owner is owner (None: nobody yet)?"""
    if owner is None or owner == claimant:
        return True
    return claimant in BOOT and (owner in BOOT or owner == LEGACY)


class Names:
    """The registry of names: {name: {"owner", "uid", "since"}}, persisted at path."""

    def __init__(self, path, log):
        self.path, self.log = path, log
        self.entries = {}
        self.problem = None
        self._load()

    def _load(self):
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as e:
            return self._distrust(f"cannot open it: {e.strerror}")
        try:
            st = os.fstat(fd)
            if not _trusted(st):
                return self._distrust("it is not a regular file that only aetherd's uid may write")
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = json.loads(f.read(16 << 20).decode("utf-8"))
        except (OSError, ValueError) as e:
            return self._distrust(f"it does not parse: {e}")
        finally:
            os.close(fd)
        if not isinstance(data, dict):
            return self._distrust("it is not a table of names")
        for name, entry in data.items():
            if (isinstance(name, str) and isinstance(entry, dict) and isinstance(entry.get("owner"), str)
                    and isinstance(entry.get("uid"), int) and FIRST_UID <= entry["uid"] <= LAST_UID):
                self.entries[name] = {"owner": entry["owner"], "uid": entry["uid"],
                                      "since": entry.get("since"), "tree": entry.get("tree")}

    def _distrust(self, why):
        """An unreadable registry fails closed: every name with a home is legacy (its uid is
        its home's owner), no new name is declared except by a boot manifest or a reclaim,
        and the file is kept aside for inspection before a new one replaces it."""
        self.problem = f"the agent name registry {self.path} is not usable ({why})"
        self.log.error(self.problem + ": every name with a home is treated as legacy "
                                      "(only boot manifests or a reclaim may take it)")
        try:
            os.replace(self.path, self.path + ".distrusted")
        except OSError:
            pass

    # -- queries ------------------------------------------------------------------------

    def owner(self, name):
        entry = self.entries.get(name)
        return entry["owner"] if entry else None

    def uid(self, name):
        return self.entries[name]["uid"]

    # -- changes ------------------------------------------------------------------------

    def check(self, name, claimant, reclaim=False):
        """Raise NameRefused (conflict) unless claimant may take name; returns its owner now."""
        previous = self.owner(name)
        if not reclaim and not may_claim(previous, claimant):
            raise NameRefused("conflict", f"the name {name!r} belongs to {previous}, who declared it first "
                                          "(its memories and files stay with the name); choose another "
                                          "name, or ask the shell to take it over with "
                                          "agent.spawn reclaim=true")
        return previous

    def claim(self, name, claimant, reclaim=False, tree=None):
        """Record claimant as the owner of name (checked); returns the previous owner or None.

        ``tree`` is the top-level agent whose subtree declares it (None for the privileged
        and boot manifests): a subtree holds at most PER_TREE names, so no agent can use up
        the uids by spawning ever new names.  Raises NameRefused (conflict) when claimant may
        not take the name, (budget) past that bound, and (unavailable) when the new owner
        cannot be made durable: nothing changes then."""
        entry = self.entries.get(name)
        if self.problem and claimant not in BOOT and not reclaim:
            raise NameRefused("unavailable", f"{self.problem}: until it is repaired (or removed, to "
                                             "start a new one) only boot manifests or a reclaim by the "
                                             f"shell may declare a name; {name!r} was not declared")
        previous = self.check(name, claimant, reclaim)
        if entry is not None and previous == claimant:
            return previous
        if tree is not None and entry is None:
            held = sum(1 for e in self.entries.values() if e.get("tree") == tree)
            if held >= PER_TREE:
                raise NameRefused("budget", f"the agents below {tree} have declared {held} names, the "
                                            f"most one tree may hold; reuse one of them (names stay with "
                                            "their owner), or ask the shell")
        new = {"owner": claimant, "uid": entry["uid"] if entry else self._next_uid(),
               "since": round(time.time(), 3), "tree": tree}
        self.entries[name] = new
        try:
            self.save()
        except OSError as e:
            if entry is None:
                del self.entries[name]
            else:
                self.entries[name] = entry
            raise NameRefused("unavailable", f"cannot record the owner of {name!r} in {self.path}: "
                                            f"{e.strerror or e}; nothing was declared") from None
        return previous

    def adopt(self, names_uids):
        """Names found on disk without an owner (the old layout): owner legacy, their uids kept."""
        changed = False
        for name, uid in names_uids.items():
            if name in self.entries:
                continue
            if uid is None or not FIRST_UID <= uid <= LAST_UID or uid in self._uids():
                uid = self._next_uid()
            self.entries[name] = {"owner": LEGACY, "uid": uid, "since": None}
            changed = True
        if changed:
            self.save()

    def _uids(self):
        return {e["uid"] for e in self.entries.values()}

    def _next_uid(self):
        uid = max(self._uids(), default=FIRST_UID - 1) + 1
        if uid > LAST_UID:
            raise NameRefused("unavailable", f"no agent uids left ({FIRST_UID}..{LAST_UID} are all named)")
        return uid

    def save(self):
        """Replace the file atomically and durably."""
        replace_durably(self.path, json.dumps(self.entries, sort_keys=True, indent=1).encode())


def _trusted(st):
    """A regular file, owned by aetherd's uid, that nobody else may write."""
    import stat
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022
