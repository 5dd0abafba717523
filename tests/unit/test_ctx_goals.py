"""Goals: intent, plan, steps and outcomes, each change in the journal."""

import pytest

from aether.ctx import InvalidArgument, NotFound, PermissionDenied

import ctx_helpers

clock, store = ctx_helpers.clock, ctx_helpers.store      # fixtures


def test_goal_lifecycle_is_journalled(store):
    goal = store.create_goal("agent:a", "free disk space", plan="find big files, delete old logs",
                             steps=["list /var/log", "delete logs older than 30 days"])
    assert goal["status"] == "open" and goal["scope"] == "agent:a"
    assert [s["status"] for s in goal["steps"]] == ["pending", "pending"]
    store.update_goal("agent:a", goal["id"], status="active")
    store.update_step("agent:a", goal["id"], 1, "running")
    store.update_step("agent:a", goal["id"], 1, "done", outcome="412 files, 3.1 GB")
    step = store.add_step("agent:a", goal["id"], "report to the user")
    assert step["n"] == 3
    store.update_step("agent:a", goal["id"], 2, "failed", outcome="permission denied")
    done = store.update_goal("agent:a", goal["id"], status="failed", outcome="could not delete")
    assert done["status"] == "failed" and done["outcome"] == "could not delete"
    full = store.goal("agent:a", goal["id"])
    kinds = [e["kind"] for e in full["journal"]]
    assert kinds == ["goal.create", "goal.update", "goal.step", "goal.step", "goal.step", "goal.step",
                     "goal.update"]
    assert full["journal_seq"] == full["journal"][-1]["seq"]
    assert full["steps"][0]["outcome"] == "412 files, 3.1 GB"
    assert full["steps"][1]["journal_seq"] == full["journal"][5]["seq"]
    assert store.append("agent:a", "tool.result", {"ok": True}, goal_id=goal["id"])["seq"] > 0
    assert len(store.journal("agent:a", goal_id=goal["id"])) == 8


def test_goal_listing_and_access(store):
    g = store.create_goal("agent:a", "a")
    store.create_goal("agent:b", "b")
    assert [x["intent"] for x in store.goals("agent:a")] == ["a"]
    assert {x["intent"] for x in store.goals("shell")} == {"a", "b"}
    assert store.goals("shell", status="done") == []
    with pytest.raises(PermissionDenied):
        store.update_goal("agent:b", g["id"], status="done")
    with pytest.raises(NotFound, match="goal 77 does not exist"):
        store.goal("shell", 77)
    with pytest.raises(NotFound, match="goal 1 has no step 9"):
        store.update_step("agent:a", g["id"], 9, "done")


@pytest.mark.parametrize("call, message", [
    (lambda s, g: s.update_goal("agent:a", g, status="finished"), "status='finished': must be one of open"),
    (lambda s, g: s.update_step("agent:a", g, 1, "ok"), "status='ok': must be one of pending"),
    (lambda s, g: s.update_goal("agent:a", g), "give at least one of status, plan, outcome"),
    (lambda s, g: s.create_goal("agent:a", ""), "intent='': must not be empty"),
    (lambda s, g: s.create_goal("agent:a", "x", steps="one"), "steps: give a list"),
])
def test_goal_errors(store, call, message):
    g = store.create_goal("agent:a", "g", steps=["s"])["id"]
    with pytest.raises(InvalidArgument, match=message):
        call(store, g)
