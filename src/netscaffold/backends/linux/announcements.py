"""Kernel announcements over netlink multicast, shared by the route monitor and the conntrack monitor: a
socket subscribed to some groups with a large receive buffer, and a non-blocking read of what is queued
that tells when the kernel dropped announcements (the socket overflowed: ``ENOBUFS``)."""

from __future__ import annotations

import errno
import socket

SO_RCVBUFFORCE = 33
RECV_BYTES = 1 << 20


def subscribed_socket(protocol: int, groups: int, rcvbuf_bytes: int) -> socket.socket:
    """A netlink socket of ``protocol`` bound to the multicast ``groups`` (a bit mask), its receive buffer
    forced to ``rcvbuf_bytes`` (root), or as large as the system limit allows otherwise."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf_bytes)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
    sock.bind((0, groups))
    return sock


def read_queued(sock: socket.socket) -> tuple[list[bytes], bool]:
    """The datagrams queued on ``sock`` (without blocking) and whether it overflowed. After an overflow
    the rest of the queue is read and dropped (stale: the caller resyncs from a dump), so that the kernel
    reports the next overflow."""
    chunks: list[bytes] = []
    while True:
        try:
            chunks.append(sock.recv(RECV_BYTES, socket.MSG_DONTWAIT))
        except BlockingIOError:
            return chunks, False
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            _drain(sock)
            return chunks, True


def _drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
