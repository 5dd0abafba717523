"""Agent manifests: defaults, units, and messages that name file, field, value and rule."""

import pytest

from aether.agent import manifest as m


def parse(text):
    return m.parse(text, "agents/x.toml")


def test_defaults_and_units():
    a = parse('name = "web"\nprogram = "/usr/bin/web"\nheartbeat = "30s"\n'
              '[limits]\nmemory = "128M"\ncpu = "50%"\ndeadline = "1h"\n[context]\nbudget_tokens = 500\n')
    assert (a.limits_memory, a.limits_cpu, a.limits_deadline, a.heartbeat) == (128 << 20, 0.5, 3600.0, 30.0)
    assert a.restart == "on-failure" and a.user == "agent" and a.context_budget_tokens == 500
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
