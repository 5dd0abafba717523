"""Agent manifests: defaults, units, and messages that name file, field, value and rule."""

import pytest

from aether.agent import manifest as m


def parse(text):
    return m.parse(text, "agents/x.toml")


def test_defaults_and_units():
    a = parse('name = "web"\nprogram = "/usr/bin/web"\nheartbeat = "30s"\n'
              '[limits]\nmemory = "128M"\ncpu = "50%"\ndeadline = "1h"\n[context]\nbudget_tokens = 500\n')
    assert (a.limits_memory, a.limits_cpu, a.limits_deadline, a.heartbeat) == (128 << 20, 0.5, 3600.0, 30.0)
    assert a.restart == "on-failure" and a.user == "agent" and a.context_spend_tokens == 500
    assert a.context_window_tokens is None and a.context_period is None    # the old one number: the spend
    assert len(a.notices) == 1 and "budget_tokens = 500 is obsolete" in a.notices[0]
    assert a.backoff_initial == 0.5 and a.intensity_restarts == 5


@pytest.mark.parametrize("text,needle", [
    ('name = "Web"\nprogram = "a:b"', "name = 'Web': 1-32 characters"),
    ('name = "w"\nprogram = "relative/path"', "program = 'relative/path'"),
    ('name = "w"\nprogram = "a:b"\nrestart = "sometimes"', "restart = 'sometimes': one of always"),
    ('name = "w"\nprogram = "a:b"\npriority = 101', "priority = 101: an integer from 0 to 100"),
    ('name = "w"\nprogram = "a:b"\n[limits]\nmemory = "lots"', "limits.memory = 'lots': a size"),
    ('name = "w"\nprogram = "a:b"\n[limits]\ncpu = "500%%%"', "limits.cpu"),
    ('name = "w"\nprogram = "a:b"\nheartbeat = "soon"', "heartbeat = 'soon': a duration"),
    ('name = "w"\nprogram = "a:b"\ncolour = "red"', "unknown field(s) colour"),
    ('program = "a:b"', "name is required"),
    ('name = "w"\nprogram = "a:b"\nuser = "root"', "needs grant"),
    ('name = "w"\nprogram = "a:b"\n[backoff]\ninitial = "10s"\nmax = "1s"', "backoff.max"),
    ('name = "w"\nprogram = ', "not valid TOML"),
])
def test_bad_manifests_say_what_and_why(text, needle):
    with pytest.raises(m.ManifestError) as e:
        parse(text)
    assert str(e.value).startswith("agents/x.toml: ")
    assert needle in str(e.value)


def test_load_dir_keeps_the_good_ones(tmp_path):
    (tmp_path / "a.toml").write_text('name = "a"\nprogram = "x.y:main"\n')
    (tmp_path / "b.toml").write_text('name = "b"\nprogram = 3\n')
    (tmp_path / "c.toml").write_text('name = "a"\nprogram = "x.y:main"\n')
    (tmp_path / "notes.txt").write_text("ignored")
    warnings = []
    found = m.load_dir(str(tmp_path), warnings.append)
    assert list(found) == ["a"]
    assert any("b.toml: program = 3" in w for w in warnings)
    assert any("already defined" in w for w in warnings)


def test_window_and_spend_are_two_numbers():
    one = parse('name = "web"\nprogram = "/usr/bin/web"\n[context]\nwindow_tokens = 2048\n'
              'spend_tokens = 200000\nperiod = "1d"\n')
    assert (one.context_window_tokens, one.context_spend_tokens, one.context_period) == (2048, 200000, 86400.0)
    assert one.notices == []
    both = parse('name = "web"\nprogram = "/usr/bin/web"\n[context]\nspend_tokens = 10\nbudget_tokens = 99\n')
    assert both.context_spend_tokens == 10 and "ignored" in both.notices[0]
    with pytest.raises(m.ManifestError, match="context.window_tokens"):
        parse('name = "web"\nprogram = "/usr/bin/web"\n[context]\nwindow_tokens = 3\n')


def test_an_old_manifest_loads_with_a_notice(tmp_path):
    (tmp_path / "old.toml").write_text('name = "old"\nprogram = "/bin/true"\n[context]\nbudget_tokens = 700\n')
    said = []
    found = m.load_dir(str(tmp_path), said.append)
    assert found["old"].context_spend_tokens == 700
    assert any("obsolete" in line and "spend_tokens" in line for line in said)


@pytest.mark.parametrize("old, new", [
    ("aether.agents.goal:main", "aether.builtin.goal:main"),
    ("aether.agents.watch:main", "aether.builtin.watch:main"),
])
def test_the_built_in_agents_old_package_name_still_loads(old, new):
    # manifests and agent records on users' data disks were written with aether.agents.*
    assert m.current_program(old) == new
    assert m.from_dict({"name": "w", "program": old}).program == new


@pytest.mark.parametrize("program", ["aether.builtin.goal:main", "tests.host.x:main", "/bin/sh",
                                     "aether.agentsx.goal:main", "notaether.agents.goal:main"])
def test_other_programs_are_not_renamed(program):
    assert m.current_program(program) == program
