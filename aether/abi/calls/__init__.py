"""The ABI's methods, one module per namespace, and the table aetherd serves.

``sys``    the machine: info, agents, events, alerts, power
``agent``  agents: spawn, inspect, start, stop, limits, logs, heartbeat
``ask``    an agent asks a person; the shell answers (requests, approve, deny)
``tool``   the tools agents call (aether/tools/)
``llm``    model calls through the broker
``ctx``    the context store (aether/ctx/)
``think``  a thread's next turn from the model, with the store's context

To add a namespace: write ``calls/<name>.py`` with a module-level ``METHODS``
list of ``Method`` (aether/abi/methods.py: the access levels, ``obj`` for a params
schema), import only ``..methods``, ``..protocol`` (errors) and ``..deferred``
(an answer that comes later) from the ABI, never ``..server``; then import it in
``table()`` below and add it to the tuple there (the order the table is built in).
docs/abi.md lists every method; tests/unit/test_abi_docs.py checks it does.
"""


def table():
    """Every method, by name (the namespaces are imported here, on first use)."""
    from . import agent, ask, ctx, llm, package, sys, think, tool
    methods = {}
    for module in (sys, agent, ask, tool, llm, ctx, think, package):
        for m in module.METHODS:
            methods[m.name] = m
    return methods
