"""Ports chosen for servers that bind later: free, never twice, and outside the kernel's ephemeral
range, where an outgoing connection could take one before its server binds it."""

from __future__ import annotations

import socket

from services.runtime.natsserver import PORT_FLOOR, ephemeral_ports, free_port


def test_chosen_ports_are_free_distinct_and_outside_the_ephemeral_range() -> None:
    ephemeral = ephemeral_ports()
    assert len(ephemeral) > 1000  # the range was read, not empty
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(PORT_FLOOR <= p < 65536 and p not in ephemeral for p in ports)
    for port in ports[:20]:  # each can still be bound by the server it was chosen for
        with socket.socket() as server:
            server.bind(("0.0.0.0", port))
            server.listen()


def test_the_ports_outgoing_connections_get_are_the_ones_avoided() -> None:
    # What the old choice (bind port 0) handed out: a port from the range outgoing connections use.
    with socket.socket() as listener, socket.socket() as client:
        listener.bind(("127.0.0.1", free_port()))
        listener.listen()
        client.connect(listener.getsockname())
        assert client.getsockname()[1] in ephemeral_ports()
