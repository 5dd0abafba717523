"""Who is calling: from the kernel (SO_PEERCRED and the caller's cgroup), never from
what the caller claims.

An agent is recognised by the cgroup its process lives in
(``/aether/agents/.../<name>/self``).  Root processes outside the agents' tree
(the console, the intent shell) and the host's channel are privileged.
"""

AGENTS_CGROUP = "/aether/agents"


class Caller:
    """The identity behind one connection."""

    __slots__ = ("principal", "pid", "uid", "gid", "agent", "privileged", "via")

    def __init__(self, principal, pid=None, uid=None, gid=None, agent=None,
                 privileged=False, via="socket"):
        self.principal, self.pid, self.uid, self.gid = principal, pid, uid, gid
        self.agent, self.privileged, self.via = agent, privileged, via

    def sees(self, event):
        """The privileged see every event; an agent, those about itself and its children."""
        return self.privileged or (self.agent is not None
                                   and self.agent in (event.get("agent"), event.get("parent")))

    def describe(self):
        return {"principal": self.principal, "pid": self.pid, "uid": self.uid,
                "agent": self.agent, "privileged": self.privileged, "via": self.via}

    def __repr__(self):
        return f"Caller({self.principal!r}, pid={self.pid}, uid={self.uid})"


def agent_of_cgroup(path):
    """The agent name a cgroup path belongs to, or None.

    /aether/agents/web/self -> web; /aether/agents/web/crawler/self -> crawler.
    """
    if not path.startswith(AGENTS_CGROUP + "/"):
        return None
    parts = [p for p in path[len(AGENTS_CGROUP) + 1:].split("/") if p]
    if parts and parts[-1] == "self":
        parts.pop()
    return parts[-1] if parts else None


def cgroup_of(pid, proc="/proc"):
    """The unified-hierarchy cgroup path of a process, or None."""
    try:
        with open(f"{proc}/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None


def uid_of(pid, proc="/proc"):
    """The effective uid of a process now, or None."""
    try:
        with open(f"{proc}/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[2])
    except (OSError, ValueError, IndexError):
        return None
    return None


def from_peer(pid, uid, gid, proc="/proc"):
    """The Caller for a socket peer.  It fails closed: a root peer whose cgroup cannot be
    read (it exited, or aetherd is out of descriptors) may be an agent granted root, so it
    is the unprivileged ``uid:0``, never the shell.  The pid is looked up after connect: if
    the peer exited and its pid went to another process, the uid there is not the one the
    kernel gave for the socket (SO_PEERCRED), and the cgroup says nothing about the peer."""
    cgroup = cgroup_of(pid, proc)
    now = uid_of(pid, proc)
    if cgroup is not None and now != uid:
        cgroup = None                   # another process holds the pid now (or it cannot be read)
    agent = agent_of_cgroup(cgroup or "")
    if agent:
        return Caller(f"agent:{agent}", pid, uid, gid, agent=agent)
    if uid == 0 and cgroup is not None:
        return Caller("shell", pid, uid, gid, privileged=True)
    return Caller(f"uid:{uid}", pid, uid, gid)


HOST = Caller("host", privileged=True, via="virtio-serial")
