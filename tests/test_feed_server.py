"""The test and benchmark feed server takes a burst of 50 concurrent connections (its listen backlog).

With socketserver's default backlog of 5, connections past the first few are dropped while the server is
busy and the client stalls 1-20 s retransmitting: 50 concurrent fetches then measure the backlog, not
digest. The burst below connects while the server accepts nothing, so only the backlog can hold it.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading

import pytest
from feed_server import LISTEN_BACKLOG, FeedServer, Reply, rss

CONNECTIONS = 50


def listen_backlog(sock: socket.socket) -> int:
    """The backlog the kernel gave a listening TCP socket (Linux: tcp_info's `sacked` for a listener)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(struct.unpack_from("I", info, 28)[0])


@pytest.mark.skipif(sys.platform != "linux", reason="tcp_info of a listening socket is Linux's")
def test_the_kernel_holds_the_configured_backlog() -> None:
    server = FeedServer()
    try:
        assert LISTEN_BACKLOG >= CONNECTIONS
        assert listen_backlog(server.httpd.socket) >= CONNECTIONS
    finally:
        server.httpd.server_close()


def test_fifty_concurrent_connections_all_complete() -> None:
    server = FeedServer()  # listening, not yet accepting
    body = rss("Midwives celebrated")
    server.routes["/feed.xml"] = lambda request: Reply(200, body, {"Content-Type": "application/rss+xml"})
    port = server.httpd.server_address[1]
    clients: list[socket.socket] = []
    try:
        # All 50 connect before the server accepts one: each handshake must find room in the backlog
        # (a dropped SYN would leave connect() waiting for its retransmit into a queue that never drains).
        for _ in range(CONNECTIONS):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        server.thread.start()
        replies: list[bytes] = [b""] * CONNECTIONS
        errors: list[BaseException] = []

        def fetch(i: int) -> None:
            try:
                clients[i].sendall(b"GET /feed.xml HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                chunks = []
                while chunk := clients[i].recv(65536):
                    chunks.append(chunk)
                replies[i] = b"".join(chunks)
            except OSError as e:  # a reset or a refused connection is the failure this test looks for
                errors.append(e)

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(CONNECTIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert all(r.startswith(b"HTTP/1.0 200") and r.endswith(body) for r in replies)
        assert len(server.hits("/feed.xml")) == CONNECTIONS
    finally:
        for client in clients:
            client.close()
        server.release.set()
        if server.thread.is_alive():
            server.httpd.shutdown()
        server.httpd.server_close()
