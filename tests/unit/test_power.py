"""Power-button detection and decoding of evdev records."""

from aether.pid1 import power


def test_has_key_reads_the_kernel_bitmap():
    # KEY_POWER is 116: word 1 (bits 64..127), bit 52 of that word.
    bitmap = f"{1 << 52:x} 0"
    assert power.has_key(bitmap, 116)
    assert not power.has_key("0 0", 116)
    assert not power.has_key("", 116)
    assert not power.has_key(f"{1 << 52:x}", 116)     # word 0 only: bit 52, not 116


def test_power_buttons_found_in_sysfs(tmp_path):
    for name, caps, label in (("event0", f"{1 << 52:x} 0", "Power Button"),
                              ("event1", "0", "Mouse"), ("mouse0", "ff", "x")):
        dev = tmp_path / name / "device" / "capabilities"
        dev.mkdir(parents=True)
        (dev / "key").write_text(caps + "\n")
        (tmp_path / name / "device" / "name").write_text(label + "\n")
    assert power.power_buttons(str(tmp_path)) == [("/dev/input/event0", "Power Button")]


def test_presses_counts_key_down_only():
    rec = power.EVENT.pack
    data = b"".join([rec(0, 0, power.EV_KEY, power.KEY_POWER, 1),
                     rec(0, 0, 0, 0, 0),
                     rec(0, 0, power.EV_KEY, power.KEY_POWER, 0),
                     rec(0, 0, power.EV_KEY, 30, 1)])
    assert power.presses(data) == 1
    assert power.presses(data[:10]) == 0
