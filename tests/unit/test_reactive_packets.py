"""The reactive controller's reading of a queued packet's addresses (IPv4 and IPv6) and its spelling of
endpoint addresses."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from netscaffold.backends.linux.reactive import packet_addresses
from netscaffold.formats.render.layout import kernel_address


def _ipv4_header(src: str, dst: str) -> bytes:
    return struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0,
        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed,
    )  # fmt: skip


def _ipv6_header(src: str, dst: str) -> bytes:
    fixed = struct.pack("!IHBB", 6 << 28, 8, 17, 64)
    return fixed + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed


def test_ipv4_and_ipv6_addresses_are_read_from_the_header() -> None:
    assert packet_addresses(_ipv4_header("198.18.0.1", "198.18.0.2") + b"payload") == (
        "198.18.0.1",
        "198.18.0.2",
    )
    assert packet_addresses(_ipv6_header("fd00::1", "fd00:0:0:1::2")) == ("fd00::1", "fd00:0:0:1::2")


@pytest.mark.parametrize(
    "header",
    [
        b"",
        _ipv4_header("198.18.0.1", "198.18.0.2")[:19],
        _ipv6_header("fd00::1", "fd00::2")[:39],
        b"\x50" * 40,
    ],
    ids=["empty", "ipv4-cut-short", "ipv6-cut-short", "version-5"],
)
def test_anything_else_has_no_addresses(header: bytes) -> None:
    assert packet_addresses(header) is None


def test_canonical_spelling_matches_the_kernels() -> None:
    assert kernel_address("fd00:0:0::1") == "fd00::1"
    assert kernel_address("FD00::A") == "fd00::a"
    assert kernel_address("198.18.0.1") == "198.18.0.1"
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        kernel_address("not-an-address")
