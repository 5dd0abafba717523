"""The model broker: every model call on the machine waits in one queue in aetherd.

queue.py is the scheduling policy (which waiting call goes next), spend.py the
token ledger (reserve before sending, settle after, persisted in the context
store), circuit.py the endpoint's circuit breaker, broker.py the runtime that
dispatches calls to forked workers and cancels them.  The ABI side is
aether/abi/calls/llm.py.
"""
