"""The built-in agents' logic (their ABI traffic is covered by the VM tests)."""

import pytest

from aether.builtin import metrics, sysmon, watch

INFO = {"load": ["0.50", "0.4", "0.3"], "agents": {"total": 3, "by_state": {"failed": 1}},
        "memory": {"memtotal_kib": 1000, "used_kib": 850, "memavailable_kib": 150},
        "pressure": {"cpu": {"some": {"avg10": 12.5}}},
        "disks": [{"mount": "/var/lib/aether", "size_bytes": 100, "free_bytes": 5}]}


def test_flatten_names_every_reading():
    v = metrics.flatten(INFO, cpu=42.0)
    assert v["memory.used_percent"] == 85.0 and v["cpu.percent"] == 42.0
    assert v["pressure.cpu"] == 12.5 and v["disk./var/lib/aether.used_percent"] == 95.0
    assert v["agents.failed"] == 1 and v["load.1"] == 0.5


def test_a_read_only_file_system_is_not_a_full_disk():
    info = dict(INFO, disks=INFO["disks"] + [{"mount": "/", "size_bytes": 100, "free_bytes": 0, "read_only": True}])
    assert "disk./.used_percent" not in metrics.flatten(info)


def test_record_parses_readings_and_interval():
    from aether.builtin import record
    assert record.parse(["load.1", "cpu.percent", "--every", "300"]) == (["load.1", "cpu.percent"], 300.0)
    with pytest.raises(SystemExit, match="name a reading"):
        record.parse(["--every", "5"])
    with pytest.raises(SystemExit, match="too often"):
        record.parse(["load.1", "--every", "0.1"])


def test_cpu_percent():
    assert metrics.cpu_percent((100, 50), (200, 75)) == 75.0
    assert metrics.cpu_percent((100, 50), (100, 50)) == 0.0


@pytest.mark.parametrize("text,true", [
    ("memory.used_percent > 80", True),
    ("memory.used_percent>90", False),
    ("memory.used_percent > 80 and load.1 >= 1", False),
    ("memory.used_percent > 90 or pressure.cpu >= 12.5", True),
    ("no.such.reading > 0", False),
    ("memory.used_percent > 80%", True),
])
def test_conditions(text, true):
    assert watch.holds(watch.parse_condition(text), metrics.flatten(INFO)) is true


@pytest.mark.parametrize("text,needle", [
    ("memory.used_percent >", "incomplete comparison"),
    ("memory.used_percent ~ 3", "not a comparison"),
    ("memory.used_percent > lots", "not a number"),
    ("load.1 > 1 but load.1 < 3", "expected 'and' or 'or'"),
    ("load.1 > 1 and", "ends with 'and'"),
    ("", "empty condition"),
])
def test_bad_conditions_say_why(text, needle):
    with pytest.raises(watch.ConditionError, match=needle):
        watch.parse_condition(text)


def test_sysmon_options_and_thresholds():
    opts = sysmon.parse(["--interval", "2", "--memory", "80"])
    assert opts["interval"] == 2.0 and opts["memory"] == 80.0
    checks = sysmon.thresholds(opts, metrics.flatten(INFO, cpu=1))
    assert checks["memory.used_percent"] == 80.0 and checks["disk./var/lib/aether.used_percent"] == 90.0
    with pytest.raises(SystemExit, match="unknown option"):
        sysmon.parse(["--colour", "red"])


def test_context_pressure_is_a_reading_when_aetherd_reports_it():
    info = dict(INFO, llm={"think": {"pressure": 0.4, "thrashing": ["agent:a"], "by_principal": {}}})
    v = metrics.flatten(info)
    assert v["context.pressure"] == 0.4 and v["context.thrashing"] == 1
    assert "context.pressure" not in metrics.flatten(INFO)
