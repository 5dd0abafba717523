"""Configuration lookup order and validation."""

import pytest

from aether import config


def load(tmp_path, cmdline="", data=None, defaults=None):
    warnings = []
    paths = {}
    for name, text in (("cmdline", cmdline), ("data", data), ("defaults", defaults)):
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        paths[name] = str(path)
    cfg = config.load(warnings.append, **paths)
    return cfg, warnings


def test_builtin_defaults_when_nothing_is_set(tmp_path):
    cfg, warnings = load(tmp_path)
    assert cfg["hostname"] == "aether" and cfg.origin["hostname"] == "built-in default"
    assert cfg["stop_timeout"] == 5.0 and cfg["consoles"] == "auto"
    assert warnings == []


def test_lookup_order_cmdline_then_data_then_defaults(tmp_path):
    cfg, _ = load(tmp_path, cmdline="console=ttyS0 aether.hostname=fromcmd",
                  data="hostname = fromdata\nlog_level = debug\n",
                  defaults="hostname = fromdefaults\nlog_level = error\nstop_timeout = 2\n")
    assert (cfg["hostname"], cfg.origin["hostname"]) == ("fromcmd", "kernel command line")
    assert cfg["log_level"] == "debug" and cfg.origin["log_level"].endswith("data")
    assert cfg["stop_timeout"] == 2.0


def test_bad_value_falls_back_to_the_next_source_with_a_clear_message(tmp_path):
    cfg, warnings = load(tmp_path, cmdline="aether.hostname=bad_host!",
                         defaults="hostname = fallback\n")
    assert cfg["hostname"] == "fallback"
    assert len(warnings) == 1
    msg = warnings[0]
    assert "aether.hostname='bad_host!' is not valid" in msg
    assert "'!_'" in msg and "using 'fallback'" in msg


@pytest.mark.parametrize("key,value,needle", [
    ("hostname", "-lead", "may not start or end"),
    ("hostname", "a" * 65, "1 to 64"),
    ("hostname", "a..b", "1 to 63"),
    ("consoles", "ttyS0,/dev/x", "not a terminal name"),
    ("consoles", ",", "comma-separated"),
    ("log_level", "loud", "use one of"),
    ("stop_timeout", "soon", "number of seconds"),
    ("stop_timeout", "0", "more than 0"),
    ("stop_timeout", "301", "at most 300"),
])
def test_invalid_values(tmp_path, key, value, needle):
    cfg, warnings = load(tmp_path, cmdline=f"aether.{key}={value}")
    assert cfg.origin[key] == "built-in default"
    assert len(warnings) == 1 and needle in warnings[0]


def test_unknown_keys_and_bad_lines_are_reported(tmp_path):
    _cfg, warnings = load(tmp_path, cmdline="aether.hostnme=x", data="just words\n")
    assert any("unknown setting 'aether.hostnme'" in w and "known:" in w for w in warnings)
    assert any(":1: ignoring 'just words'" in w for w in warnings)


def test_consoles_list(tmp_path):
    cfg, _ = load(tmp_path, cmdline="aether.consoles=ttyS0,tty1")
    assert cfg["consoles"] == ["ttyS0", "tty1"]


def test_cmdline_quotes_like_the_kernel():
    assert config.parse_cmdline('a "b c" d="e f" g') == ["a", "b c", "d=e f", "g"]
    assert config.cmdline_settings('aether.hostname="box" quiet aether.x=1') == {
        "hostname": "box", "x": "1"}


def test_a_hash_inside_a_value_is_kept(tmp_path):
    cfg, warnings = load(tmp_path, data="llm.api_key = sk-ab#cd#ef\n"
                                        "llm.model = tiny   # the small one\n"
                                        "# a whole-line comment\n"
                                        'hostname = "box"\n')
    assert cfg["llm.api_key"] == "sk-ab#cd#ef"         # cut at the first '#' before
    assert cfg["llm.model"] == "tiny" and cfg["hostname"] == "box"
    assert warnings == []
    cfg, _ = load(tmp_path, data='llm.model = "a # b"\n')
    assert cfg["llm.model"] == "a # b"


def test_an_invalid_api_key_is_never_shown(tmp_path):
    key = "sk-" + "s3cr3t" * 100                       # longer than the 500 allowed
    cfg, warnings = load(tmp_path, data=f"llm.api_key = {key}\nllm.api_key {key}\n")
    assert cfg["llm.api_key"] == ""
    assert len(warnings) == 2 and all("s3cr3t" not in w for w in warnings), warnings
    assert "603 characters" in warnings[1] or "603 characters" in warnings[0]
