"""aether.client: when aetherd refuses a connection and closes it before the request is
sent, the caller gets aetherd's reason, not a broken pipe."""

import socket

import pytest

from aether.abi.protocol import AbiError, encode
from aether.client import Client, ConnectionLost


def test_a_refusal_sent_before_the_close_is_raised_even_when_the_send_fails():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.sendall(encode({"id": None, "error": {
        "code": "unavailable", "message": "connection refused: 64 open, the most one caller may hold (64)"}}))
    theirs.close()
    client = Client(sock=ours, timeout=5)
    with pytest.raises(AbiError, match="the most one caller may hold"):
        for _ in range(50):                  # until the send itself fails (EPIPE)
            client.call("sys.info")


def test_a_close_without_a_reason_is_connection_lost():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.close()
    with pytest.raises(ConnectionLost):
        Client(sock=ours, timeout=5).call("sys.info")
