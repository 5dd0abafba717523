"""Access levels (issue 15, item 2): a plain local uid may only read; docs/abi.md says who may call what."""

import re
from pathlib import Path

import pytest

from aether.abi.identity import HOST, Caller, from_peer
from aether.abi.calls import table
from aether.abi.methods import ANY, PUBLIC, Method
from aether.abi.protocol import PermissionDenied

DOC = (Path(__file__).resolve().parents[2] / "docs" / "abi.md").read_text()
LOCAL = Caller("uid:4242", pid=1, uid=4242, gid=4242)
AGENT = Caller("agent:web", pid=2, uid=10001, gid=10001, agent="web")
WRITES = ("agent.spawn", "agent.stop", "agent.signal", "agent.set_limits", "agent.remove", "sys.alert",
          "sys.power", "tool.call", "llm.complete", "ctx.remember", "ctx.append", "ctx.grant",
          "ctx.create_scope", "ctx.purge", "ctx.set_retention", "ctx.export", "ctx.import")


def test_the_docs_give_every_methods_access_level():
    rows = dict(re.findall(r"^\| `([a-z_.]+)` \| [^|]* \| (\w+) \|", DOC, re.M))
    wrong = {n: (rows.get(n), m.access) for n, m in table().items() if rows.get(n) != m.access}
    assert not wrong, f"docs/abi.md's access column disagrees with the method table: {wrong}"


@pytest.mark.parametrize("name", WRITES)
def test_a_local_uid_may_not_change_anything(name):
    with pytest.raises(PermissionDenied, match="may only read|for the shell and the host"):
        table()[name].admit(LOCAL)


def test_a_local_uid_may_read_and_agents_and_the_privileged_pass():
    methods = table()
    for name in ("sys.info", "agent.list", "ctx.search", "tool.list", "abi.hello"):
        methods[name].admit(LOCAL)
    for name in WRITES:
        if methods[name].access == ANY:
            methods[name].admit(AGENT)
        methods[name].admit(HOST)
    assert from_peer(1, 4242, 4242, proc="/nonexistent").principal == "uid:4242"


def test_a_new_method_is_closed_to_local_uids_unless_declared_public():
    new = Method("x.new", lambda *a: None, {"type": "object"}, ANY, "a new call")
    with pytest.raises(PermissionDenied):
        new.admit(LOCAL)
    Method("x.read", lambda *a: None, {"type": "object"}, PUBLIC, "a read").admit(LOCAL)
    with pytest.raises(ValueError, match="access"):
        Method("x.bad", lambda *a: None, {"type": "object"}, "everyone", "typo")
