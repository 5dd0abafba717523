"""PID 1's boot timeline: the kernel's "Run /init" record, read bounded and strictly."""

import os

from aether.pid1 import boottime


def test_the_kernel_record_gives_its_timestamp():
    assert boottime.parse_record("6,812,1612345,-;Run /init as init process\n") == 1.612345
    assert boottime.parse_record("6,812,1612345,-,caller=T1;Run /init as init process\n"
                                 " SUBSYSTEM=x\n") == 1.612345


def test_other_and_malformed_records_are_ignored():
    for record in ("6,812,1612345,-;Freeing initrd memory: 5304K\n",
                   "Run /init as init process\n",                    # no header
                   "6,812,-5,-;Run /init as init process\n",          # no usec
                   "6,812,1e9,-;Run /init as init process\n",
                   "6,812," + "9" * 40 + ",-;Run /init as init process\n",
                   "6,812;Run /init as init process\n",
                   "6,812,1612345,-;Run /init as init process; rm -rf /\n"):
        assert boottime.parse_record(record) is None, record


def test_reading_stops_at_the_bound_and_at_the_end(tmp_path):
    log = tmp_path / "kmsg"
    log.write_bytes(b"6,1,100,-;hello\n")        # a regular file: one read returns everything
    assert boottime.kernel_ran_init(str(log)) is None
    assert boottime.kernel_ran_init(str(tmp_path / "absent")) is None
    r, w = os.pipe()                             # a log that never ends: the bound stops it
    os.write(w, b"x" * 60000)
    assert boottime.kernel_ran_init(f"/proc/self/fd/{r}", limit=3) is None
    os.close(r)
    os.close(w)


def test_the_line_lists_the_kernel_then_each_phase():
    line = boottime.line(1.61, [("python", 1.89), ("imports", 1.99)])
    assert line == "boot timeline: kernel ran /init 1.61 s, python 1.89 s, imports 1.99 s"
    assert boottime.line(None, [("python", 1.89)]) == "boot timeline: python 1.89 s"
