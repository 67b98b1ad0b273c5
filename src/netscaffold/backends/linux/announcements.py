"""Kernel announcements over netlink multicast, shared by the route monitor and the conntrack monitor: a
socket subscribed to some groups with a large receive buffer, a non-blocking read of what is queued that
tells when the kernel dropped announcements (the socket overflowed: ``ENOBUFS``), and the set of
per-namespace watchers a lab-wide monitor holds."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

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


class NodeWatcher(Protocol):
    """What a lab-wide monitor needs of its watcher in one namespace (besides its own ``poll``)."""

    overflows: int

    def close(self) -> None: ...


W = TypeVar("W", bound=NodeWatcher)


class NodeWatchers(Generic[W]):
    """One watcher per lab namespace, made all or none (a failure while making them closes those made),
    their overflows counted and closed together; a subclass polls them (its events have its own type)."""

    def __init__(self, watchers: Iterable[W]) -> None:
        self.monitors: list[W] = []
        try:
            for watcher in watchers:
                self.monitors.append(watcher)
        except BaseException:
            self.close()
            raise

    @property
    def overflows(self) -> int:
        return sum(m.overflows for m in self.monitors)

    def close(self) -> None:
        for monitor in self.monitors:
            monitor.close()
        self.monitors.clear()
