"""nftables JSON for ``nft -j -f``: our table (one per node namespace) and the set elements that carry
firewall permits/denies (per-element timeouts: provisional permits expire in the kernel by themselves) and
virtual-circuit marks.

Set keys are ``saddr . daddr . l4proto . dport`` intervals, so a wildcard field is its full range. nft's
JSON takes element timeouts in whole seconds (a fractional value is silently ignored), so timeouts are
rounded up.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Literal

from netscaffold.errors import PlanError
from netscaffold.formats.render.objects import KernelElement, canonical_prefix
from netscaffold.model.config import FirewallRule, ItemKey, Origin

TABLE = "netscaffold"
FAMILY = "inet"
RECORD_SET = "items"
"""Item records (see :mod:`netscaffold.formats.render.records`): (hash high, hash low, chunk) -> comment."""
MAX_TIMEOUT_S = 2_000_000  # about 23 days: longer kernel timeouts overflow; expire() removes the rest
_PROTO_NUMBERS = {"tcp": 6, "udp": 17}
_ORIGIN_VALUES = {origin: origin.value for origin in Origin}
"""``origin.value`` without the enum's attribute machinery (a comment per permit)."""
_ICMP = {4: 1, 6: 58}

Json = dict[str, Any]


def set_name(action: str, family: int) -> str:
    return _SET_NAMES.get((action, family)) or f"{'permit' if action == 'accept' else 'deny'}{family}"


_SET_NAMES = {
    (action, family): f"{kind}{family}"
    for action, kind in (("accept", "permit"), ("drop", "deny"))
    for family in (4, 6)
}


def circuit_map(family: int) -> str:
    return f"circuit{family}"


def _addr_type(family: int) -> str:
    return "ipv4_addr" if family == 4 else "ipv6_addr"


def table_commands(*, forward_policy: Literal["accept", "drop"]) -> list[Json]:
    """Create (or reset the chains of) our table: deny sets first, then permits, then the policy.

    Existing set elements survive (``add`` of an existing set is a no-op); the chains are flushed and
    rewritten, so the same commands repair a table whose rules were tampered with.
    """
    commands: list[Json] = [{"add": {"table": {"family": FAMILY, "name": TABLE}}}]
    for family in (4, 6):
        key = [_addr_type(family), _addr_type(family), "inet_proto", "inet_service"]
        commands.extend(
            _set_command(set_name(action, family), key, ["interval", "timeout"])
            for action in ("drop", "accept")
        )
        circuits = {"family": FAMILY, "table": TABLE, "name": circuit_map(family), "type": key[:2]}
        commands.append({"add": {"map": {**circuits, "map": "mark", "flags": ["timeout"]}}})
    commands.append(_set_command(RECORD_SET, ["mark", "mark", "mark"], ["timeout"]))
    commands += _chain_commands("forward", "filter", "forward", 0, forward_policy)
    commands.append(_rule("forward", [_ct_established(), {"accept": None}]))
    for family in (4, 6):
        for action in ("drop", "accept"):
            commands.append(_rule("forward", [*_lookup(family, set_name(action, family)), {action: None}]))
    for hook, chain_type in (("prerouting", "filter"), ("output", "route")):
        commands += _chain_commands(f"mark_{hook}", chain_type, hook, -150, "accept")
        for family in (4, 6):
            commands.append(_rule(f"mark_{hook}", _mark_from_map(family)))
    return commands


def _chain_commands(name: str, chain_type: str, hook: str, prio: int, policy: str) -> list[Json]:
    chain = {"family": FAMILY, "table": TABLE, "name": name}
    hooked = {**chain, "type": chain_type, "hook": hook, "prio": prio, "policy": policy}
    return [{"add": {"chain": hooked}}, {"flush": {"chain": chain}}]


def _set_command(name: str, key: list[str], flags: list[str]) -> Json:
    return {"add": {"set": {"family": FAMILY, "table": TABLE, "name": name, "type": key, "flags": flags}}}


def _rule(chain: str, expr: list[Json]) -> Json:
    return {"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}}}


def _ct_established() -> Json:
    state = {"ct": {"key": "state"}}
    return {"match": {"op": "in", "left": state, "right": ["established", "related"]}}


def _addr_pair(family: int) -> list[Json]:
    proto = "ip" if family == 4 else "ip6"
    return [
        {"payload": {"protocol": proto, "field": "saddr"}},
        {"payload": {"protocol": proto, "field": "daddr"}},
    ]


def _lookup(family: int, name: str) -> list[Json]:
    key = [
        *_addr_pair(family),
        {"meta": {"key": "l4proto"}},
        {"payload": {"protocol": "th", "field": "dport"}},
    ]
    return [{"match": {"op": "==", "left": {"concat": key}, "right": f"@{name}"}}]


def _mark_from_map(family: int) -> list[Json]:
    value = {"map": {"key": {"concat": _addr_pair(family)}, "data": f"@{circuit_map(family)}"}}
    return [{"mangle": {"key": {"meta": {"key": "mark"}}, "value": value}}]


def timeout_for(expires_at: float | None, now_s: float) -> int | None:
    """Whole seconds left until ``expires_at`` (at least 1), capped; None for a permanent element."""
    if expires_at is None:
        return None
    return max(1, min(MAX_TIMEOUT_S, math.ceil(expires_at - now_s)))


def item_comment(kind: str, ident: str, origin: Origin, expires_at: float | None) -> str:
    """What an element carries back from the kernel: whose it is, its origin and its expiry."""
    expiry = "" if expires_at is None else repr(expires_at)
    comment = f"{kind}|{ident}|{_ORIGIN_VALUES[origin]}|{expiry}"
    if len(comment) > 128:
        raise PlanError("identity too long for an nft element comment (128 bytes)", element=ident)
    return comment


def _interval(prefix: str | None, family: int) -> str | Json:
    if prefix is None:
        return {"prefix": {"addr": "::" if family == 6 else "0.0.0.0", "len": 0}}  # noqa: S104 (a match-all prefix, not a bind)
    address, _, length = canonical_prefix(prefix).partition("/")  # as ip_network(strict=False), faster
    if ":" in address and "." in address:  # IPv4-mapped: ipaddress spells it otherwise; keep its spelling
        network = ipaddress.ip_network(prefix, strict=False)
        address, length = str(network.network_address), str(network.prefixlen)
    if int(length) == (128 if ":" in address else 32):
        return address
    return {"prefix": {"addr": address, "len": int(length)}}


def _freeze(part: str | Json | int) -> str | int:
    """A hashable, canonical form of one concat member (JSON text for prefixes and ranges)."""
    if isinstance(part, dict):
        if "prefix" in part:
            return f"{part['prefix']['addr']}/{part['prefix']['len']}"
        low, high = part["range"]
        return f"{low}-{high}"
    return part


def _version(prefix: str) -> int:
    """4 or 6 (of a prefix the model has validated: a ``:`` only in IPv6, as ``canonical_prefix`` tells)."""
    return 6 if ":" in prefix else 4


@lru_cache(maxsize=65536)
def _frozen_interval(prefix: str | None, family: int) -> str | int:
    return _freeze(_interval(prefix, family))


def rule_families(rule: FirewallRule) -> list[int]:
    families = {_version(p) for p in (rule.match.src, rule.match.dst) if p}
    if len(families) > 1:
        raise PlanError("src and dst are of different address families", element=rule.describe())
    return sorted(families) or [4, 6]


def firewall_elements(
    rule: FirewallRule, now_s: float, *, item_key: ItemKey | None = None
) -> list[KernelElement]:
    """One element per address family the rule covers (a rule without addresses covers both); ``item_key``:
    ``rule.key`` where the caller has it (the property builds it on every call)."""
    m = rule.match
    key = rule.key if item_key is None else item_key
    comment = item_comment("fw", "/".join(key[2:]), rule.origin, rule.expires_at)
    timeout = timeout_for(rule.expires_at, now_s)
    port: str | int = m.dst_port if m.dst_port is not None else "0-65535"
    src, dst, proto_name = m.src, m.dst, m.proto
    if src and dst and (":" in src) == (":" in dst):  # the common case: one family, from the addresses
        families = [6 if ":" in src else 4]
    else:
        families = rule_families(rule)  # (which raises for mixed families)
    out = []
    for family in families:
        proto: str | int
        if proto_name is None:
            proto = "0-255"
        else:
            proto = _ICMP[family] if proto_name == "icmp" else _PROTO_NUMBERS[proto_name]
        element_key = (_frozen_interval(src, family), _frozen_interval(dst, family), proto, port)
        name = _SET_NAMES[rule.action, family]
        out.append(KernelElement(rule.device, name, element_key, None, comment, timeout))
    return out


def circuit_element(
    node: str, src: str, dst: str, *, mark: int, comment: str, timeout_s: int | None
) -> KernelElement:
    family = ipaddress.ip_address(src).version
    return KernelElement(node, circuit_map(family), (src, dst), mark, comment, timeout_s)


def _thaw(part: str | int) -> str | int | Json:
    if isinstance(part, int):
        return part
    if "/" in part:
        addr, length = part.split("/")
        return {"prefix": {"addr": addr, "len": int(length)}}
    if "-" in part and ":" not in part and "." not in part:
        low, high = part.split("-")
        return {"range": [int(low), int(high)]}
    return part


def element_json(element: KernelElement, *, with_payload: bool) -> Json | list[Any]:
    """An element as ``nft -j`` takes it: the bare key for a delete; key, timeout, comment (and, in a
    map, the value) for an add."""
    val: Json = {"concat": [_thaw(part) for part in element.key]}
    if not with_payload:
        return val
    elem: Json = {"val": val, "comment": element.comment}
    if element.timeout_s is not None:
        elem["timeout"] = element.timeout_s
    return {"elem": elem} if element.value is None else [{"elem": elem}, element.value]


def element_commands(action: Literal["add", "delete"], elements: Iterable[KernelElement]) -> list[Json]:
    """One command per set, in a stable order (the whole list goes in one ``nft -j -f`` transaction)."""
    by_set: dict[str, list[KernelElement]] = {}
    for element in elements:
        by_set.setdefault(element.set_name, []).append(element)
    commands: list[Json] = []
    for name in sorted(by_set):
        elems = [element_json(e, with_payload=action == "add") for e in by_set[name]]
        body = {"family": FAMILY, "table": TABLE, "name": name, "elem": elems}
        commands.append({action: {"element": body}})
    return commands


def document(commands: list[Json]) -> Json:
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]}
