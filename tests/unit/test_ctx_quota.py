"""Usage counters, quotas and pressure; counters stay exact through every state change."""

import pytest
from hypothesis import HealthCheck, given, settings

from aether.ctx import ContextError, NotFound, PermissionDenied
from aether.ctx.quota import Pressure, psi_lines

from ctx_helpers import OPS, Clock, apply, open_store



def recount(s):
    rows = s.db.all("SELECT s.name, "
                    "coalesce(sum(m.state = 'live'), 0), coalesce(sum(CASE WHEN m.state = 'live' "
                    "THEN m.tokens END), 0), coalesce(sum(m.state IN ('compacted', 'forgotten')), 0), "
                    "coalesce(sum(CASE WHEN m.state IN ('compacted', 'forgotten') THEN m.tokens END), 0) "
                    "FROM scopes s LEFT JOIN memories m ON m.scope_id = s.id GROUP BY s.name ORDER BY s.name")
    return {r[0]: {"live": {"items": r[1], "tokens": r[2]}, "retained": {"items": r[3], "tokens": r[4]}}
            for r in rows}


def counters(s):
    return {u["scope"]: {"live": u["live"], "retained": u["retained"]} for u in s.usage("shell")["scopes"]}


def fts_rows(s, table, scope_id=1):
    """Rows of a full-text index in one scope (every row carries its scope's token)."""
    return s.db.one(f"SELECT count(*) FROM {table} WHERE {table} MATCH 'sid:s{scope_id}'")[0]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_counters_and_indexes_follow_every_change(tmp_path_factory, ops):
    clock = Clock()
    s = open_store(tmp_path_factory.mktemp("q") / "c.db", clock, quota_items=15)
    try:
        for op, n in ops:
            try:
                apply(s, clock, op, n)
            except ContextError:
                pass                         # e.g. forgetting a compacted item, restoring twice
        if s.usage("shell")["scopes"]:
            assert counters(s) == recount(s)
            live = s.usage("shell", "agent:a")["live"]["items"]
            assert fts_rows(s, "memories_fts") == live
            compacted = s.db.one("SELECT count(*) FROM memories WHERE state = 'compacted'")[0]
            assert fts_rows(s, "compacted_fts") == compacted
        assert s.db.integrity_check() == "ok"
    finally:
        s.close()


def test_usage_and_quota_defaults(tmp_path):
    s = open_store(tmp_path / "c.db", quota_tokens=1000, quota_items=10)
    s.remember("agent:a", "x")
    u = s.usage("agent:a", "agent:a")
    assert u["quota"] == {"tokens": 1000, "items": 10} and 0 < u["storage_pressure"] <= 0.1
    s.set_quota("shell", "agent:a", tokens="max", items=None)
    assert s.usage("agent:a", "agent:a")["quota"] == {"tokens": "max", "items": 10}
    with pytest.raises(NotFound, match="scope agent:zz does not exist yet"):
        s.usage("shell", "agent:zz")
    s.close()


def test_pressure_permissions(tmp_path):
    s = open_store(tmp_path / "c.db")
    assert s.pressure("agent:a")["principal"] == "agent:a"
    with pytest.raises(PermissionDenied, match="only its own pressure"):
        s.pressure("agent:a", "agent:b")
    assert s.pressure("shell", "agent:b")["principal"] == "agent:b"
    s.close()


def test_pressure_windows_are_sliding():
    clock = Clock()
    p = Pressure(clock)
    p.record("agent:a", demand=200, budget=100, some=1, full=0)
    clock.advance(30)
    p.record("agent:a", demand=50, budget=100, some=0, full=1)
    r = p.report("agent:a")
    assert r["some"] == {"avg10": 0.0, "avg60": 50.0, "avg300": 50.0, "total": 1}
    assert r["full"] == {"avg10": 100.0, "avg60": 50.0, "avg300": 50.0, "total": 1}
    assert r["demand"]["avg60"] == 1.25 and r["demand"]["total"] == 2
    clock.advance(400)
    assert p.report("agent:a")["some"]["avg300"] == 0.0
    assert p.report("*")["demand"]["total"] == 2
    assert psi_lines(r)[0] == "some avg10=0.00 avg60=50.00 avg300=50.00 total=1"
