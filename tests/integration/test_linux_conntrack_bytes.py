"""Per-pair bytes from conntrack's counters on a lab (root): real UDP datagrams both ways between two lab
hosts are counted per endpoint pair and direction (IP length: 28 bytes of headers per datagram), once
(on the source's host), only what is new at each take, also for a connection that ended between two
takes (its DESTROY announcement carries the final counters), and not for skipped ports."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.conntrack import ConntrackBytes

from .test_linux_common import route_a_b, small_lab

pytestmark = pytest.mark.root

UDP_IP_HEADERS = 28


@pytest.fixture
def backend() -> Iterator[LinuxBackend]:
    with small_lab("cb") as be:
        route_a_b(be)
        yield be


def _exchange(backend: LinuxBackend, port: int, sizes: list[int], reply: int) -> None:
    """Datagrams of ``sizes`` payload bytes from a (198.18.0.1:41000) to b (198.18.0.2:``port``), and one of
    ``reply`` bytes back once b has them all (real packets through the lab, one connection)."""
    receiver = (
        "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        f"s.bind(('198.18.0.2',{port}));s.settimeout(5);n=0\n"
        f"while n<{len(sizes)}:\n data,peer=s.recvfrom(65535);n+=1\n"
        f"s.sendto(b'r'*{reply},peer);print(n,flush=True)"
    )
    sender = (
        "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('198.18.0.1',41000))\n"
        f"for size in {sizes}:\n s.sendto(b'x'*size,('198.18.0.2',{port}))\n"
        "s.settimeout(5);print(len(s.recv(65535)),flush=True)"
    )
    exec_in = ["ip", "netns", "exec"]
    with subprocess.Popen(
        [*exec_in, backend.layout.namespace("h2"), "python3", "-c", receiver],
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        subprocess.run(["sleep", "0.3"], check=True)  # the receiver binds before the first datagram leaves
        got = subprocess.run(
            [*exec_in, backend.layout.namespace("h1"), "python3", "-c", sender],
            check=True,
            capture_output=True,
            text=True,
        )
        out, _ = server.communicate(timeout=10)
    assert out.strip() == str(len(sizes)), "the datagrams crossed"
    assert got.stdout.strip() == str(reply), "the reply crossed back"


def test_bytes_per_pair_and_direction_once_and_only_what_is_new(backend: LinuxBackend) -> None:
    counter = ConntrackBytes(backend.layout)
    try:
        assert sorted(host.node for host in counter.monitors) == ["h1", "h2"]
        assert counter.take(1.0) == {}
        _exchange(backend, 5301, [100, 1000, 1400], reply=50)
        assert counter.take(2.0) == {
            ("a", "b"): 2500 + 3 * UDP_IP_HEADERS,
            ("b", "a"): 50 + UDP_IP_HEADERS,
        }, "counted once, on the source's host, not again on h2"
        assert counter.take(3.0) == {}, "nothing new"
        _exchange(backend, 5301, [10], reply=20)  # the same connection (same ports), more bytes
        assert counter.take(4.0) == {("a", "b"): 10 + UDP_IP_HEADERS, ("b", "a"): 20 + UDP_IP_HEADERS}
    finally:
        counter.close()


def test_a_connection_ended_between_takes_is_counted_from_its_destroy_announcement(
    backend: LinuxBackend,
) -> None:
    counter = ConntrackBytes(backend.layout)
    try:
        _exchange(backend, 5302, [200], reply=10)
        assert counter.take(1.0) == {("a", "b"): 200 + UDP_IP_HEADERS, ("b", "a"): 10 + UDP_IP_HEADERS}
        _exchange(backend, 5302, [300, 300], reply=10)
        for host in ("h1", "h2"):
            tools.run(["ip", "netns", "exec", backend.layout.namespace(host), "conntrack", "-D", "-p", "udp"])
        ended = counter.take(2.0)
        assert ended == {("a", "b"): 600 + 2 * UDP_IP_HEADERS, ("b", "a"): 10 + UDP_IP_HEADERS}, (
            "final counters"
        )
        assert counter.take(3.0) == {}
    finally:
        counter.close()


def test_skipped_ports_are_not_counted(backend: LinuxBackend) -> None:
    counter = ConntrackBytes(backend.layout, skip_ports=[5303])
    try:
        _exchange(backend, 5303, [500], reply=5)
        assert counter.take(1.0) == {}
    finally:
        counter.close()
