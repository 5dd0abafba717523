"""Which ABI calls need a person's yes, whoever planned them.

Every Step takes its risk from here unless its planner gave a more specific
reason, so an offline intent, a model's proposal, an undo and a step found
while a plan runs all pass the same gate.  Tool calls are judged by the tool
registry (``tool.list``'s ``risky``), which the planners consult themselves.
"""

METHODS = {
    "sys.power": "powers the machine off or reboots it",
    "agent.stop": "stops an agent and every agent under it",
    "agent.restart": "stops an agent and every agent under it",
    "agent.remove": "removes an agent's declaration",
    "agent.signal": "sends a signal to an agent's processes",
    "ctx.forget": "forgets a memory (recoverable until purged)",
    "ctx.purge": "deletes compacted and forgotten originals for good",
}
LIMITS = "a lower memory or process limit can kill the agent's processes"


def of(method, params):
    """Why this call needs a yes, or None."""
    if method == "agent.set_limits" and ("memory" in params or "pids" in params):
        return LIMITS
    return METHODS.get(method)
