"""Power events: the ACPI power button, read as a key press from evdev.

QEMU's ``system_powerdown`` and a real machine's power button both arrive as
KEY_POWER on an input device (the ACPI button driver), not as a signal.
"""

import os
import _struct as struct  # struct.py only re-exports _struct; one import less before the prompt

from ..sysinfo import read_text

EV_KEY = 1
KEY_POWER = 116
EVENT = struct.Struct("llHHi")   # struct input_event on x86_64
LONG_BITS = 64
INPUT_SYS = "/sys/class/input"


def has_key(bitmap, code):
    """True if the hex words of a capabilities/key file (most significant first) set code."""
    words = bitmap.split()
    index = code // LONG_BITS
    if index >= len(words):
        return False
    return bool(int(words[-1 - index], 16) >> (code % LONG_BITS) & 1)


def power_buttons(sys_root=INPUT_SYS):
    """[(device node, name)] of input devices that can send KEY_POWER."""
    found = []
    try:
        entries = sorted(os.listdir(sys_root))
    except OSError:
        return found
    for entry in entries:
        if entry.startswith("event") and has_key(read_text(f"{sys_root}/{entry}/device/capabilities/key"), KEY_POWER):
            found.append((f"/dev/input/{entry}", read_text(f"{sys_root}/{entry}/device/name")))
    return found


def presses(data):
    """How many KEY_POWER presses a chunk of input_event records holds."""
    count = 0
    for offset in range(0, len(data) - EVENT.size + 1, EVENT.size):
        _sec, _usec, etype, code, value = EVENT.unpack_from(data, offset)
        if etype == EV_KEY and code == KEY_POWER and value == 1:
            count += 1
    return count


def watch(loop, log, on_press):
    """Watch every power button; call on_press() when one is pressed."""
    buttons = power_buttons()
    for node, name in buttons:
        try:
            fd = os.open(node, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            log.warning(f"cannot watch power button {node} ({name}): {e.strerror}")
            continue

        def readable(fd, node=node):
            try:
                data = os.read(fd, EVENT.size * 64)
            except BlockingIOError:
                return
            except OSError:
                loop.remove_reader(fd)
                return
            if presses(data):
                log.info(f"power button pressed ({node})")
                on_press()

        loop.add_reader(fd, readable)
    return buttons
