"""Network interfaces: bringing loopback up (the kernel then gives it 127.0.0.1)."""

import _socket
import fcntl
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFF_RUNNING = 0x40
IFREQ = "16sh22x"   # struct ifreq: name, flags, padding to 40 bytes


def up(name="lo"):
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = struct.pack(IFREQ, name.encode(), 0)
        _, flags = struct.unpack(IFREQ, fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, req))
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS,
                    struct.pack(IFREQ, name.encode(), flags | IFF_UP | IFF_RUNNING))
    finally:
        sock.close()
