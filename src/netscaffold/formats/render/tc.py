"""``tc -batch`` lines: an HTB root per link egress (the link's capacity), a default class for
unreserved traffic, and one class + u32 filter per reservation (classid and filter handle share a minor).

Rates are written in bit/s and kept by the kernel in bytes/s, so a :class:`KernelClass` holds bytes/s.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Literal

from netscaffold.formats.render.objects import KernelClass, KernelFilter

ROOT_MINOR = 1
DEFAULT_MINOR = 0xFFFE
FIRST_RESERVATION_MINOR = 0x10
LAST_RESERVATION_MINOR = 0xFFF  # a u32 filter handle holds 12 bits of node id
FILTER_PRIORITY = 10
MIN_RATE_BYTES_S = 125  # 1 kbit/s: HTB needs a positive rate for the default class
_MAX_QUANTUM = 200_000
_MIN_QUANTUM = 1514


def bytes_per_s(rate_bps: float) -> int:
    return max(MIN_RATE_BYTES_S, round(rate_bps) // 8)


def quantum(rate_bytes_s: int) -> int:
    return max(_MIN_QUANTUM, min(_MAX_QUANTUM, rate_bytes_s // 10))


def root_lines(device: str, capacity_bps: float) -> list[str]:
    """Root HTB qdisc (unclassified traffic -> default class) and the class holding the capacity."""
    rate = bytes_per_s(capacity_bps)
    return [
        f"qdisc replace dev {device} root handle 1: htb default {DEFAULT_MINOR:x}",
        f"class replace dev {device} parent 1: classid 1:{ROOT_MINOR:x} htb "
        f"rate {rate * 8}bit ceil {rate * 8}bit quantum {quantum(rate)}",
    ]


def class_line(kc: KernelClass, action: Literal["replace", "delete"]) -> str:
    head = f"class {action} dev {kc.device} parent 1:{ROOT_MINOR:x} classid 1:{kc.minor:x}"
    if action == "delete":
        return head
    return (
        f"{head} htb rate {kc.rate_bytes_s * 8}bit ceil {kc.ceil_bytes_s * 8}bit "
        f"quantum {quantum(kc.rate_bytes_s)}"
    )


def filter_line(kf: KernelFilter, action: Literal["replace", "delete"]) -> str:
    """One u32 instance (``protocol all``) holds both families, so every handle lives in hash table 800;
    the IP version nibble keeps an IPv6 header from matching IPv4 offsets and back."""
    head = (
        f"filter {action} dev {kf.device} parent 1: protocol all prio {FILTER_PRIORITY} "
        f"handle 800::{kf.minor:x} u32"
    )
    if action == "delete":
        return head
    match = "ip" if kf.family == 4 else "ip6"
    version = "0x40" if kf.family == 4 else "0x60"
    return (
        f"{head} match u8 {version} 0xf0 at 0 match {match} src {kf.src} match {match} dst {kf.dst} "
        f"flowid 1:{kf.minor:x}"
    )


@lru_cache(maxsize=65536)
def host_prefix(address: str) -> str:
    network = ipaddress.ip_network(address)
    return f"{network.network_address}/{network.max_prefixlen}"
