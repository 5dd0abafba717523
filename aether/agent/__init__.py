"""Agents as supervised workloads: manifests, cgroups, the state machine, launching,
and the supervisor that ties them together (run inside aetherd)."""
