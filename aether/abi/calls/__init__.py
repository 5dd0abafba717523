"""The ABI's namespaces, one module each: sys, agent, tool, llm, ctx."""
