"""aetherctl: the host's command-line tool for a running AetherOS VM.

It talks to aetherd over the virtio-serial channel ``make run`` attaches
(QEMU's end is the Unix socket out/run/ctl.sock), or to any ABI socket.

    aetherctl status                    machine and agent summary
    aetherctl agents [--versions]       the agent table (--versions: deployed packages' versions)
    aetherctl inspect NAME              one agent in detail
    aetherctl spawn FILE.toml           declare and start an agent from a manifest
    aetherctl stop|start|restart NAME
    aetherctl logs NAME [LINES]         an agent's recent output
    aetherctl events [KIND...]          follow the event stream (Ctrl-C ends)
    aetherctl requests                  agents' requests waiting for a person's yes (agent.ask)
    aetherctl approve|deny N [NOTE]     answer request N (what it asks is printed first)
    aetherctl call METHOD [JSON]        any ABI method, params as a JSON object
    aetherctl pack DIR [--out DIR] [--find-links DIR] [--no-index]
                                        make NAME-VERSION.aether of a package directory
                                        (docs/agents.md); no VM needed
    aetherctl deploy FILE.aether|DIR [--allow root,net,unconfined]
                                        upload, install and start a package (the same
                                        version again changes nothing; a package that asks
                                        for grants is refused unless --allow names them)
    aetherctl rollback NAME             make the version before the current one current
    aetherctl undeploy NAME             stop a deployed agent and uninstall all its versions
    aetherctl shell                     the intent shell, on this terminal
    aetherctl intent [--yes] "GOAL"     plan and run one goal; print plan and outcome
                                        (risky steps run only with --yes; exit 0 when
                                        every step ran, 1 when not, 2 not understood)

Options: --socket PATH (default out/run/ctl.sock, or $AETHER_SOCKET), --json.
"""

import json
import os
import sys

from .abi.protocol import AbiError
from .client import Client

DEFAULT = os.path.join("out", "run", "ctl.sock")


def _table(rows, columns):
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "") if r.get(c) is not None else "-").ljust(widths[c])
                        for c in columns) for r in rows]
    return "\n".join(lines)


def status(c, args):
    from .shell.render import model_lines
    info = c.call("sys.info")
    mem = info["memory"]
    a = info["agents"]
    return (f"{info['hostname']}  kernel {info['kernel']}  up {info['uptime_s']:.0f}s  "
            f"load {' '.join(info['load'])}\n"
            f"memory {mem['used_kib'] >> 10} MiB used of {mem['memtotal_kib'] >> 10} MiB\n"
            f"agents {a['total']} {a['by_state']}  (limits enforced: {a['limits_enforced']})"
            + (f"\nrequests {info['requests']['pending']} waiting (aetherctl requests)"
               if (info.get("requests") or {}).get("pending") else "")
            + "".join("\n" + line for line in model_lines(info.get("llm") or {})))


def agents(c, args):
    if args == ["--versions"]:
        return _versions(c.call("package.list"))
    return _table(c.call("agent.list"), ["name", "state", "pid", "parent", "starts", "last_exit", "reason"])


def inspect(c, args):
    return json.dumps(c.call("agent.inspect", name=_one(args, "NAME")), indent=2)


def spawn(c, args):
    import tomllib
    path = _one(args, "FILE.toml")
    try:
        with open(path, "rb") as f:
            manifest = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SystemExit(f"aetherctl: cannot read {path}: {e}") from None
    result = c.call("agent.spawn", manifest=manifest)
    return f"{result['name']}: {result['state']} ({result['reason']})"


def _verb(method):
    def run(c, args):
        result = c.call(method, name=_one(args, "NAME"))
        return f"{result['name']}: {result['state']} ({result['reason']})"
    return run


def logs(c, args):
    if not args:
        raise SystemExit("aetherctl logs: name an agent")
    lines = int(args[1]) if len(args) > 1 else 100
    return "\n".join(c.call("agent.logs", name=args[0], lines=lines)["lines"])


def events(c, args):
    try:
        for event in c.subscribe(args or ["*"]):
            print(json.dumps(event), flush=True)
    except KeyboardInterrupt:
        return ""


def call(c, args):
    if not args:
        raise SystemExit("aetherctl call: name a method, e.g. aetherctl call sys.info")
    try:
        params = json.loads(args[1]) if len(args) > 1 else {}
    except ValueError as e:
        raise SystemExit(f"aetherctl call: params are not JSON: {e}") from None
    if not isinstance(params, dict):
        raise SystemExit("aetherctl call: params must be a JSON object, e.g. '{\"name\": \"sysmon\"}'")
    return json.dumps(c.call(args[0], **params), indent=2)


def _versions(rows):
    out = []
    for row in rows:
        if "problem" in row:
            out.append(f"{row['name']}: {row['problem']}")
            continue
        out.append(f"{row['name']}: current {row['current'] or '-'} ({row['state'] or 'not running'})")
        for v in row["versions"]:
            mark = "*" if v["version"] == row["current"] else " "
            out.append(f"  {mark} {v['version']:<10} {v['sha256'][:12]}  {v['size']:>9} B  {v['status']}")
    return "\n".join(out) or "no packages deployed"


def deploy(c, args):
    from .packages import format as fmt
    from .packages.upload import upload
    allow = []
    if "--allow" in args:
        i = args.index("--allow")
        if i + 1 >= len(args):
            raise SystemExit("aetherctl deploy: --allow needs the grants, e.g. --allow root,unconfined")
        allow = [g for g in args[i + 1].split(",") if g]
        args = args[:i] + args[i + 2:]
    try:
        result = upload(c, _one(args, "FILE.aether or DIR"), allow)
    except fmt.PackageError as e:
        raise SystemExit(f"aetherctl deploy: {e}") from None
    return result["message"]


def rollback(c, args):
    from .packages.upload import COMMIT_TIMEOUT
    c.sock.settimeout(COMMIT_TIMEOUT)
    return c.call("package.rollback", name=_one(args, "NAME"))["message"]


def undeploy(c, args):
    from .packages.upload import COMMIT_TIMEOUT
    c.sock.settimeout(COMMIT_TIMEOUT)
    return c.call("package.remove", name=_one(args, "NAME"))["message"]


def pack(args):
    """aetherctl pack DIR [--out DIR] [--find-links DIR] [--no-index]: no connection needed."""
    from .packages import format as fmt
    from .packages.vendor import pack_with_requires
    opts = {"--out": None, "--find-links": None}
    rest, no_index = [], False
    while args:
        arg = args.pop(0)
        if arg in opts and args:
            opts[arg] = args.pop(0)
        elif arg == "--no-index":
            no_index = True
        else:
            rest.append(arg)
    if len(rest) != 1:
        raise SystemExit("aetherctl pack: expected one package directory, e.g. aetherctl pack my-agent/")
    try:
        path, digest = pack_with_requires(rest[0], opts["--out"], opts["--find-links"], no_index)
    except (fmt.PackageError, OSError) as e:
        print(f"aetherctl pack: {e}", file=sys.stderr)
        return 1
    print(f"{path}  sha256 {digest}")
    return 0


def requests(c, args):
    from .shell.intents.requests import render_requests
    return render_requests(c.call("agent.requests"))


def _answering(method):
    def run(c, args):
        if not args or not args[0].isdigit():
            raise SystemExit(f"aetherctl {method.split('.')[1]}: give a request's number (aetherctl requests lists them)")
        rid = int(args[0])
        asked = c.call("agent.answer_of", id=rid)
        print(f"request {rid} of {asked['agent']}: {asked['step']}\n  why: {asked['why']}")
        params = {"id": rid, **({"note": " ".join(args[1:])} if len(args) > 1 else {})}
        from .shell.intents.requests import render_answered
        return render_answered(c.call(method, **params))
    return run


def _one(args, what):
    if len(args) != 1:
        raise SystemExit(f"aetherctl: expected {what}")
    return args[0]


COMMANDS = {"status": status, "agents": agents, "inspect": inspect, "spawn": spawn,
            "stop": _verb("agent.stop"), "start": _verb("agent.start"),
            "restart": _verb("agent.restart"), "logs": logs, "events": events, "call": call,
            "deploy": deploy, "rollback": rollback, "undeploy": undeploy,
            "requests": requests, "approve": _answering("agent.approve"), "deny": _answering("agent.deny")}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    path = os.environ.get("AETHER_SOCKET", DEFAULT)
    if "--socket" in argv:
        i = argv.index("--socket")
        path = argv[i + 1] if i + 1 < len(argv) else path
        del argv[i:i + 2]
    if argv and argv[0] == "pack":
        return pack(argv[1:])
    if argv and argv[0] in ("shell", "intent"):
        return _shell(path, argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.split("\n\n", 2)[2].rstrip(), file=sys.stderr)
        return 2
    try:
        with Client(path) as c:
            out = COMMANDS[argv[0]](c, argv[1:])
    except AbiError as e:
        print(f"aetherctl: {e.code}: {e}", file=sys.stderr)
        return 1
    if out:
        print(out)
    return 0


def _shell(path, argv):
    """The intent shell, from the host: the same Session the console runs, over this channel."""
    from .shell import terminal

    def connect(_wait):
        return Client(path, timeout=terminal.CALL_TIMEOUT)
    if argv[0] == "shell":
        if len(argv) != 1:
            raise SystemExit("aetherctl shell takes no arguments")
        return terminal.interactive(connect)
    rest = argv[1:]
    yes = "--yes" in rest or "-y" in rest
    words = [a for a in rest if a not in ("--yes", "-y")]
    if not words:
        raise SystemExit('aetherctl intent: expected a goal, e.g. aetherctl intent "list agents"')
    try:
        return terminal.one_shot(connect, " ".join(words), yes=yes)
    except AbiError as e:
        print(f"aetherctl: {e.code}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
