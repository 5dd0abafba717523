"""The durable agents' records (aether/agent/persist.py): what is refused, and why."""

import json
import os

from aether.agent.persist import Records, VERSION


class Log:
    def __init__(self):
        self.lines = []

    def warning(self, m):
        self.lines.append(m)
    error = info = warning


def record(name="web", **extra):
    r = {"version": VERSION, "name": name, "manifest": {"name": name, "program": "/bin/true"},
         "given": ["name", "program"], "parent": None, "lineage": [name], "spawned_by": "shell",
         "owner": "shell", "state": "running", "starts": 1, "last_exit": None, "pgid": None}
    r.update(extra)
    return r


def records(tmp_path):
    d = tmp_path / "agents"
    d.mkdir(mode=0o700)
    return Records(str(d), Log()), d


def test_a_saved_record_loads_back(tmp_path):
    r, d = records(tmp_path)
    r.save(record())
    assert oct(os.stat(d / "web.json").st_mode & 0o777) == "0o600"
    loaded, refused = r.load()
    assert refused == [] and [x["name"] for x in loaded] == ["web"]
    assert loaded[0]["manifest"].program == "/bin/true"


def test_a_bad_record_fails_that_agent_alone(tmp_path):
    r, d = records(tmp_path)
    r.save(record("good"))
    (d / "bad.json").write_text("{not json")
    os.chmod(d / "bad.json", 0o600)
    r.save(record("evil", manifest={"name": "evil", "program": "relative/path"}))
    loaded, refused = r.load()
    assert [x["name"] for x in loaded] == ["good"]
    why = {os.path.basename(p): m for p, m in refused}
    assert "not valid JSON" in why["bad.json"] and "program" in why["evil.json"]


def test_a_planted_link_is_not_followed(tmp_path):
    r, d = records(tmp_path)
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(record("web")))
    os.chmod(target, 0o600)
    os.symlink(target, d / "web.json")
    loaded, refused = r.load()
    assert loaded == [] and "never a link" in refused[0][1]


def test_a_record_others_may_write_or_a_hard_link_is_refused(tmp_path):
    r, d = records(tmp_path)
    r.save(record("web"))
    os.chmod(d / "web.json", 0o666)
    r.save(record("api"))
    os.link(d / "api.json", tmp_path / "second-link")
    loaded, refused = r.load()
    assert loaded == []
    why = {os.path.basename(p): m for p, m in refused}
    assert "mode 0666" in why["web.json"] and "one link" in why["api.json"]


def test_a_directory_others_may_use_is_not_read(tmp_path):
    r, d = records(tmp_path)
    r.save(record("web"))
    os.chmod(d, 0o755)
    loaded, refused = r.load()
    assert loaded == [] and "mode 0700" in refused[0][1]


def test_a_foreign_owner_or_a_lineage_that_lies_is_refused(tmp_path):
    r, d = records(tmp_path)
    r.save(record("child", parent="top", lineage=["top", "child"], owner="shell"))
    r.save(record("boot", owner="image"))
    r.save(record("liar", parent="x", lineage=["liar"], owner="agent:x"))
    r.save(dict(record("named"), name="other"))
    os.replace(d / "other.json", d / "named.json")
    loaded, refused = r.load()
    assert loaded == []
    why = {os.path.basename(p): m for p, m in refused}
    assert "belongs to agent:top" in why["child.json"]
    assert "boot-manifest agents have no record" in why["boot.json"]
    assert "lineage" in why["liar.json"] and "its file is named.json" in why["named.json"]
