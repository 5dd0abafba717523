"""network.*: the machine's interfaces and routes, read from /sys/class/net, /proc/net and ioctl.

IPv4 addresses come from SIOCGIFCONF (one per interface or label, with its netmask),
IPv6 addresses from /proc/net/if_inet6, routes from /proc/net/route and
/proc/net/ipv6_route.  Reading only: nothing here changes the network.
"""

import os
import struct

from .core import ToolFailed, args_schema, tool

SIOCGIFCONF = 0x8912
SIOCGIFNETMASK = 0x891B
IFREQ_SIZE = 40
FLAGS = ((0x1, "up"), (0x2, "broadcast"), (0x8, "loopback"), (0x10, "pointopoint"),
         (0x40, "running"), (0x80, "noarp"), (0x100, "promisc"), (0x200, "allmulti"),
         (0x1000, "multicast"))
SYS_NET = "/sys/class/net"


def _sys(name, attr, default=None):
    try:
        with open(f"{SYS_NET}/{name}/{attr}") as f:
            return f.read().strip()
    except OSError:
        return default


def _int(text, base=10):
    try:
        return int(text, base)
    except (TypeError, ValueError):
        return None


def flag_names(flags):
    return [name for bit, name in FLAGS if flags & bit]


def ipv4_addresses():
    """{interface name: [{"address", "prefix"}]} from SIOCGIFCONF and SIOCGIFNETMASK."""
    import _socket
    import array
    import fcntl
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        buf = array.array("B", b"\0" * IFREQ_SIZE * 128)
        addr, _ = buf.buffer_info()
        ifconf = struct.pack("iL", len(buf), addr)
        size = struct.unpack("iL", fcntl.ioctl(sock.fileno(), SIOCGIFCONF, ifconf))[0]
        found = {}
        data = buf.tobytes()[:size]
        for i in range(0, size, IFREQ_SIZE):
            label = data[i:i + 16].split(b"\0")[0].decode("ascii", "replace")
            ip = _socket.inet_ntoa(data[i + 20:i + 24])
            mask = fcntl.ioctl(sock.fileno(), SIOCGIFNETMASK, data[i:i + IFREQ_SIZE])[20:24]
            prefix = bin(int.from_bytes(mask, "big")).count("1")
            entry = {"address": ip, "prefix": prefix}
            if ":" in label:
                entry["label"] = label
            found.setdefault(label.split(":")[0], []).append(entry)
        return found
    finally:
        sock.close()


def ipv6_addresses():
    """{interface name: [{"address", "prefix", "scope"}]} from /proc/net/if_inet6."""
    import _socket
    scopes = {0x00: "global", 0x10: "host", 0x20: "link", 0x40: "site"}
    found = {}
    try:
        with open("/proc/net/if_inet6") as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) != 6:
            continue
        address = _socket.inet_ntop(_socket.AF_INET6, bytes.fromhex(parts[0]))
        found.setdefault(parts[5], []).append(
            {"address": address, "prefix": int(parts[2], 16),
             "scope": scopes.get(int(parts[3], 16), "other")})
    return found


@tool("network.interfaces", args_schema({}))
def interfaces(caller, args):
    """List network interfaces: state, flags, MTU, MAC, IPv4 and IPv6 addresses, byte counts.

    ``state`` is the kernel's operstate (up, down, unknown...); ``flags`` name the
    interface flags (up, running, loopback, broadcast, multicast...).
    """
    try:
        names = sorted(os.listdir(SYS_NET))
    except OSError as e:
        raise ToolFailed(f"cannot read {SYS_NET}: {e.strerror}") from None
    try:
        v4 = ipv4_addresses()
    except OSError:
        v4 = {}
    v6 = ipv6_addresses()
    result = []
    for name in names:
        flags = _int(_sys(name, "flags"), 16) or 0
        result.append({
            "name": name, "index": _int(_sys(name, "ifindex")), "state": _sys(name, "operstate"),
            "flags": flag_names(flags), "mtu": _int(_sys(name, "mtu")),
            "mac": _sys(name, "address"), "ipv4": v4.get(name, []), "ipv6": v6.get(name, []),
            "rx_bytes": _int(_sys(name, "statistics/rx_bytes")),
            "tx_bytes": _int(_sys(name, "statistics/tx_bytes"))})
    return {"interfaces": result}


def _ipv4_hex(text):
    import _socket
    return _socket.inet_ntoa(int(text, 16).to_bytes(4, "little"))


def ipv4_routes():
    routes = []
    try:
        with open("/proc/net/route") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return routes
    for line in lines:
        p = line.split()
        if len(p) < 11:
            continue
        flags = int(p[3], 16)
        prefix = bin(int(p[7], 16)).count("1")
        routes.append({"family": "ipv4", "destination": f"{_ipv4_hex(p[1])}/{prefix}",
                       "gateway": _ipv4_hex(p[2]) if flags & 0x2 else None,
                       "interface": p[0], "metric": int(p[6]), "up": bool(flags & 0x1)})
    return routes


def ipv6_routes():
    import _socket
    routes = []
    try:
        with open("/proc/net/ipv6_route") as f:
            lines = f.read().splitlines()
    except OSError:
        return routes
    for line in lines:
        p = line.split()
        if len(p) != 10:
            continue
        dest = _socket.inet_ntop(_socket.AF_INET6, bytes.fromhex(p[0]))
        hop = _socket.inet_ntop(_socket.AF_INET6, bytes.fromhex(p[4]))
        flags = int(p[8], 16)
        routes.append({"family": "ipv6", "destination": f"{dest}/{int(p[1], 16)}",
                       "gateway": hop if flags & 0x2 else None, "interface": p[9],
                       "metric": int(p[5], 16), "up": bool(flags & 0x1)})
    return routes


@tool("network.routes", args_schema({}))
def routes(caller, args):
    """List the IPv4 and IPv6 routes of the main table, and the default gateways.

    ``gateway`` is null for directly connected networks.
    """
    found = ipv4_routes() + ipv6_routes()
    defaults = [r for r in found if r["destination"] in ("0.0.0.0/0", "::/0") and r["gateway"]]
    return {"routes": found, "default_gateways": [
        {"family": r["family"], "gateway": r["gateway"], "interface": r["interface"]}
        for r in defaults]}
