"""Access: an agent reads and writes its own scope; sharing is a grant; the shell sees everything."""

import pytest

from aether.ctx import Conflict, InvalidArgument, NotFound, PermissionDenied

import ctx_helpers

clock, store = ctx_helpers.clock, ctx_helpers.store      # fixtures


def test_own_scope_only(store):
    mid = store.remember("agent:a", "a private fact", kind="fact")["id"]
    assert store.recall("agent:a", mid)["scope"] == "agent:a"
    with pytest.raises(PermissionDenied) as err:
        store.recall("agent:b", mid)
    message = str(err.value)
    assert "agent:b may not read scope agent:a" in message
    assert "it has no grant on agent:a; agent:a or the shell can give one" in message
    assert "ctx.grant(scope='agent:a', grantee='agent:b', mode='read')" in message
    with pytest.raises(PermissionDenied, match="agent:b may not write to scope agent:a"):
        store.remember("agent:b", "intrusion", scope="agent:a")
    with pytest.raises(PermissionDenied):
        store.forget("agent:b", mid)


def test_windows_and_searches_stay_in_readable_scopes(store):
    store.remember("agent:a", "alpha secret about disks")
    store.remember("agent:b", "beta secret about disks")
    assert {i["scope"] for i in store.window("agent:a", "disks", 1000)["items"]} == {"agent:a"}
    assert {i["scope"] for i in store.search("agent:b", "secret")["items"]} == {"agent:b"}
    assert {i["scope"] for i in store.window("shell", "disks", 1000)["items"]} == {"agent:a", "agent:b"}
    with pytest.raises(PermissionDenied):
        store.window("agent:a", "disks", 1000, scopes=["agent:b"])


def test_grants_read_then_read_write_then_revoke(store):
    mid = store.remember("agent:a", "shared knowledge")["id"]
    grant = store.grant("agent:a", "agent:a", "agent:b", "read")
    assert grant == {"scope": "agent:a", "grantee": "agent:b", "mode": "read", "granted_by": "agent:a"}
    assert store.recall("agent:b", mid)["text"] == "shared knowledge"
    with pytest.raises(PermissionDenied, match="it has only a read grant on agent:a"):
        store.remember("agent:b", "x", scope="agent:a")
    store.grant("agent:a", "agent:a", "agent:b", "read-write")
    assert store.remember("agent:b", "written by b", scope="agent:a")["scope"] == "agent:a"
    assert store.window("agent:b", "knowledge", 500)["items"][0]["id"] == mid
    store.revoke("agent:a", "agent:a", "agent:b")
    with pytest.raises(PermissionDenied):
        store.recall("agent:b", mid)
    kinds = [e["kind"] for e in store.journal("shell", scope="agent:a")]
    assert kinds == ["ctx.grant", "ctx.grant", "ctx.revoke"]


def test_only_the_owner_or_shell_grants(store):
    store.remember("agent:a", "x")
    with pytest.raises(PermissionDenied, match="only its owner agent:a or the shell"):
        store.grant("agent:b", "agent:a", "agent:c")
    store.grant("shell", "agent:a", "agent:c")
    assert [g["grantee"] for g in store.grants("shell", "agent:a")] == ["agent:c"]
    with pytest.raises(InvalidArgument, match="already see every scope"):
        store.grant("agent:a", "agent:a", "shell")
    with pytest.raises(InvalidArgument, match="owns agent:a already"):
        store.grant("shell", "agent:a", "agent:a")
    with pytest.raises(NotFound, match="agent:z has no grant"):
        store.revoke("agent:a", "agent:a", "agent:z")


def test_shared_scopes(store):
    with pytest.raises(NotFound, match="create it first"):
        store.remember("agent:a", "x", scope="shared:team")
    created = store.create_scope("agent:a", "shared:team")
    assert created["owner"] == "agent:a"
    with pytest.raises(Conflict, match="already exists"):
        store.create_scope("agent:b", "shared:team")
    store.remember("agent:a", "team fact", scope="shared:team")
    with pytest.raises(PermissionDenied):
        store.search("agent:b", "team", scopes=["shared:team"])
    store.grant("agent:a", "shared:team", "agent:b")
    assert store.search("agent:b", "team", scopes=["shared:team"])["items"][0]["text"] == "team fact"
    assert {s["scope"] for s in store.scopes("agent:b")} == {"shared:team"}
    with pytest.raises(PermissionDenied, match="may not create agent:c"):
        store.create_scope("agent:b", "agent:c")
    with pytest.raises(PermissionDenied, match="may not create shared:x for agent:c"):
        store.create_scope("agent:b", "shared:x", owner="agent:c")
    assert store.create_scope("shell", "shared:x", owner="agent:c")["owner"] == "agent:c"


def test_scopes_lists_mode(store):
    store.remember("agent:a", "x")
    store.create_scope("agent:b", "shared:b")
    store.grant("agent:b", "shared:b", "agent:a", "read")
    modes = {s["scope"]: s["mode"] for s in store.scopes("agent:a")}
    assert modes == {"agent:a": "read-write", "shared:b": "read"}


def test_shell_and_system_see_everything(store):
    store.remember("agent:a", "a")
    store.remember("agent:b", "b")
    assert store.remember("shell", "the user likes tea")["scope"] == "user"
    assert store.append("system", "boot")["seq"] == 1
    names = {s["scope"] for s in store.usage("shell")["scopes"]}
    assert names == {"agent:a", "agent:b", "user"}
    assert store.usage("shell")["system"]["live"]["items"] == 3
    with pytest.raises(PermissionDenied):
        store.recall("agent:a", store.remember("shell:tty1", "console note")["id"])


def test_host_and_uid_callers(store):
    mid = store.remember("agent:a", "visible to the host")["id"]
    assert store.recall("host", mid)["text"] == "visible to the host"
    with pytest.raises(InvalidArgument, match="uid:1000 has no scope of its own"):
        store.remember("uid:1000", "where would this go?")
    with pytest.raises(PermissionDenied):
        store.recall("uid:1000", mid)
    store.grant("agent:a", "agent:a", "uid:1000", "read-write")
    assert store.remember("uid:1000", "written with a grant", scope="agent:a")["scope"] == "agent:a"
    assert {s["scope"] for s in store.scopes("uid:1000")} == {"agent:a"}
