"""Vocabulary of service supervision: states, events, restart policies.

A leaf module: it imports nothing, everything else imports it.
"""

# Service states
STOPPED = "stopped"      # not running and not meant to be (initial, or stopped on request)
RUNNING = "running"      # the main process is alive
STOPPING = "stopping"    # TERM sent to the process group; KILL follows after the timeout
BACKOFF = "backoff"      # exited; waiting out the backoff delay before the next start
EXITED = "exited"        # finished and not restarted (policy, or exit status 125)
FAILED = "failed"        # cannot start, or restarted too often; retried only if configured

STATES = (STOPPED, RUNNING, STOPPING, BACKOFF, EXITED, FAILED)
ACTIVE = frozenset({RUNNING, STOPPING})      # a process may exist
# Nothing runs.  A FAILED service may still have a retry scheduled (retry_after): STOP
# cancels it.
RESTING = frozenset({STOPPED, EXITED, FAILED})

# Events a service reacts to
START = "start"
STOP = "stop"
EXIT = "exit"
TIMER = "timer"
EVENTS = (START, STOP, EXIT, TIMER)

# Restart policies
ALWAYS = "always"
ON_FAILURE = "on-failure"
NEVER = "never"
POLICIES = (ALWAYS, ON_FAILURE, NEVER)

# Exit status meaning "done, do not restart me" (as gokrazy and the agent manifests use it).
EXIT_DONT_RESTART = 125

# Agent states (aetherd) beyond the service states above
WAITING = "waiting"      # declared or restarting; waits until its memory and context fit
STARTING = "starting"    # launched; waiting for the child to confirm it joined its cgroup
AGENT_STATES = (WAITING, STARTING, RUNNING, BACKOFF, STOPPING, STOPPED, EXITED, FAILED)

# Agent events beyond START, STOP, EXIT, TIMER
ADMIT = "admit"                  # its reservations fit now
STARTED = "started"              # the child confirmed it runs in its cgroup
SPAWN_FAILED = "spawn_failed"    # the child could not start (exec failed, cgroup, uid)
DEADLINE = "deadline"            # past limits.deadline
SILENT = "silent"                # no heartbeat within its interval
AGENT_EVENTS = (START, ADMIT, STARTED, SPAWN_FAILED, EXIT, STOP, TIMER, DEADLINE, SILENT)
