"""Intents over the machine itself: reboot and poweroff (each needs a yes).
"""

from ..plan import Step
from .words import MACHINE, POWEROFF, QUESTION
from .registry import Match, intent


@intent("reboot", "machine", "stop everything and boot again (needs yes)",
        ["reboot", "restart the machine", "reboot the system now"])
def reboot(u, env):
    if not (u.has("reboot", "reset") or u.has("restart", "reboot") and u.has(*MACHINE)):
        return None
    return None if u.has("why") else _power(u, "reboot", "restarts")


@intent("poweroff", "machine", "stop everything and power off (needs yes)",
        ["poweroff", "shut down the machine", "turn the computer off"])
def poweroff(u, env):
    machine = u.has(*MACHINE, "everything")
    if not (u.has(*POWEROFF) or u.phrase("power off") or u.phrase("power down")
            or u.phrase("shut down") and (machine or len(u.words) <= 3)
            or u.has("turn", "switch", "shut") and u.has("off", "down") and machine or u.phrase("switch off")):
        return None
    return _power(u, "poweroff", "powers off")


def _power(u, action, what):
    """The one-step plan for poweroff and reboot; never for a question or a line about an agent."""
    if u.agent or u.has("agent", "service", *QUESTION):
        return None
    return Match(3.0, [Step("sys.power", {"action": action}, f"stop every agent and service; the machine {what}",
                            f"every agent and service stops and the machine {what}")])
