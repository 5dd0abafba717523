"""Network interfaces: loopback up (the kernel then gives it 127.0.0.1), and QEMU's user
network on a virtio NIC.

``user_net`` gives the first virtio-net interface QEMU's user-network (slirp) defaults,
10.0.2.15/24, so the guest reaches the host's 127.0.0.1 as 10.0.2.2 (``make run
MODEL=local`` points ``aether.llm.endpoint`` there).  No default route is set: the guest
reaches 10.0.2.0/24 (the host, through QEMU) and nothing beyond.  An interface that already
has an address, or a NIC that is not virtio-net, is left as it is.
"""

import _socket
import fcntl
import os
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCGIFADDR = 0x8915
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
IFF_UP = 0x1
IFF_RUNNING = 0x40
IFREQ = "16sh22x"   # struct ifreq: name, flags, padding to 40 bytes
IFREQ_ADDR = "16sHH4s16x"  # struct ifreq with a sockaddr_in: name, family, port, address, zeros
SYS_NET = "/sys/class/net"
USER_NET_ADDR, USER_NET_MASK = "10.0.2.15", "255.255.255.0"


def up(name="lo"):
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = struct.pack(IFREQ, name.encode(), 0)
        _, flags = struct.unpack(IFREQ, fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, req))
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS,
                    struct.pack(IFREQ, name.encode(), flags | IFF_UP | IFF_RUNNING))
    finally:
        sock.close()


def virtio_nics(sys_net=SYS_NET):
    """Names of the interfaces whose driver is virtio_net, sorted."""
    try:
        names = sorted(os.listdir(sys_net))
    except OSError:
        return []
    found = []
    for name in names:
        try:
            driver = os.readlink(f"{sys_net}/{name}/device/driver")
        except OSError:
            continue
        if os.path.basename(driver) == "virtio_net":
            found.append(name)
    return found


def _addr_req(name, address):
    return struct.pack(IFREQ_ADDR, name.encode(), _socket.AF_INET, 0, _socket.inet_aton(address))


def has_address(name):
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(sock.fileno(), SIOCGIFADDR, _addr_req(name, "0.0.0.0"))
        return True
    except OSError:  # EADDRNOTAVAIL: no IPv4 address yet
        return False
    finally:
        sock.close()


def set_address(name, address, netmask):
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(sock.fileno(), SIOCSIFADDR, _addr_req(name, address))
        fcntl.ioctl(sock.fileno(), SIOCSIFNETMASK, _addr_req(name, netmask))
    finally:
        sock.close()


def user_net(sys_net=SYS_NET):
    """Configure the first virtio NIC for QEMU's user network; a sentence saying what was done."""
    nics = virtio_nics(sys_net)
    if not nics:
        return "no virtio network interface"
    name = nics[0]
    if has_address(name):
        up(name)
        return f"{name} already has an address; left as it is"
    set_address(name, USER_NET_ADDR, USER_NET_MASK)
    up(name)
    return f"{name}: {USER_NET_ADDR}/24 (QEMU user network; the host is 10.0.2.2)"
