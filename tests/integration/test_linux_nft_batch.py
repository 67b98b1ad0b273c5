"""Set elements written as one nf_tables netlink batch (``NftWriter.transaction``): the bytes written
decode back to the same element (pure), and on a lab the batch commits all or nothing and names the first
element of the refused message (root)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.backends.linux import netlink, tools
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.converge import Step
from netscaffold.backends.linux.readback import _element, element_write, read_node
from netscaffold.formats.render import nftables as nft_render
from netscaffold.formats.render.objects import KernelElement

from .test_linux_common import small_lab

_SETS = {"permit4": 4, "deny6": 6}


def _decoded(write: netlink.ElementWrite, node: str) -> KernelElement:
    """What the reader makes of the bytes ``write`` puts in the kernel."""
    timeout_ms = write.timeout_ms
    msg = netlink.ElementMsg(write.key, write.key_end, write.data, write.comment, timeout_ms, timeout_ms)
    fields = {
        "permit4": ("ip4", "ip4", "proto", "port"),
        "deny6": ("ip6", "ip6", "proto", "port"),
        "circuit4": ("ip4", "ip4"),
        "items": ("mark", "mark", "mark"),
    }[write.set_name]
    return _element(node, write.set_name, fields, msg)


prefixes4 = st.sampled_from(["198.18.0.1", "198.18.0.0/15", "0.0.0.0/0", "198.19.4.0/24"])
prefixes6 = st.sampled_from(["fd00::1", "fd00::/8", "::/0", "fd00:1:2::/48"])
protos = st.sampled_from([6, 17, 1, "0-255"])
ports = st.one_of(st.integers(0, 65535), st.just("0-65535"), st.just("1000-2000"))
timeouts = st.one_of(st.none(), st.integers(1, nft_render.MAX_TIMEOUT_S))


@settings(deadline=None)  # timing is not the property (the machine is shared and loaded)
@given(st.sampled_from(sorted(_SETS)), prefixes4, prefixes6, protos, ports, timeouts, st.text(max_size=40))
def test_interval_elements_round_trip(
    set_name: str, src4: str, dst6: str, proto: int | str, port: int | str, timeout: int | None, note: str
) -> None:
    src, dst = (src4, src4) if _SETS[set_name] == 4 else (dst6, dst6)
    element = KernelElement("r1", set_name, (src, dst, proto, port), None, note.replace("\0", ""), timeout)
    write = element_write("add", element)
    assert write.key_end is not None
    assert len(write.key) == len(write.key_end)
    assert _decoded(write, "r1") == element


@settings(deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 9), timeouts)
def test_record_and_circuit_elements_round_trip(high: int, low: int, chunk: int, timeout: int | None) -> None:
    record = KernelElement("h1", "items", (high, low, chunk), None, '["r","h1"]', timeout)
    assert element_write("add", record).key_end is None
    assert _decoded(element_write("add", record), "h1") == record
    circuit = KernelElement("h1", "circuit4", ("198.18.0.1", "198.18.0.2"), 0x5C000001, "vc|x|p|", timeout)
    assert _decoded(element_write("add", circuit), "h1") == circuit


def test_a_delete_carries_the_key_only() -> None:
    element = KernelElement("r1", "permit4", ("198.18.0.1", "198.18.0.2", 17, 53), None, "fw|x|s|", 5)
    write = element_write("delete", element)
    assert b"fw|x" not in netlink.element_attrs(write)
    assert write.key == element_write("add", element).key


@pytest.fixture
def backend() -> Iterator[LinuxBackend]:
    with small_lab("n") as be:
        yield be


def _permits(count: int) -> list[KernelElement]:
    return [
        KernelElement("fw", "permit4", (f"198.18.1.{i % 250}", "198.18.0.0/15", 17, 1000 + i), None, "", 60)
        for i in range(count)
    ]


@pytest.mark.root
def test_a_batch_commits_every_element(backend: LinuxBackend) -> None:
    session = backend.sessions.get(backend.layout.namespace("fw"))
    elements = _permits(700)  # three messages of one set
    writes = [element_write("add", e) for e in elements]
    assert session.nftnl.transaction(nft_render.TABLE, writes) is None
    read = [o for o in read_node("fw", session, []) if isinstance(o, KernelElement)]
    assert {o.ident for o in read} == {e.ident for e in elements}
    assert all(o.timeout_s == 60 for o in read)
    deletes = [element_write("delete", e) for e in elements]
    assert session.nftnl.transaction(nft_render.TABLE, deletes) is None
    assert not [o for o in read_node("fw", session, []) if isinstance(o, KernelElement)]


@pytest.mark.root
def test_a_refused_message_commits_nothing_and_is_named(backend: LinuxBackend) -> None:
    session = backend.sessions.get(backend.layout.namespace("fw"))
    good = [element_write("add", e) for e in _permits(300)]
    missing = KernelElement("fw", "nosuchset", (7,), None, "", None)
    failure = session.nftnl.transaction(nft_render.TABLE, [*good, element_write("add", missing)])
    assert failure is not None
    index, errno = failure
    assert index == 300  # the first (only) element of the refused message
    assert errno == 2  # ENOENT: no such set
    assert not [o for o in read_node("fw", session, []) if isinstance(o, KernelElement)]


@pytest.mark.root
def test_deleting_a_missing_element_is_no_error(backend: LinuxBackend) -> None:
    """An element with a timeout can expire between the read and the delete: the goal (gone) holds."""
    session = backend.sessions.get(backend.layout.namespace("fw"))
    gone = element_write("delete", _permits(1)[0])
    assert session.nftnl.transaction(nft_render.TABLE, [gone]) is None


@pytest.mark.root
def test_a_step_names_the_refused_element(backend: LinuxBackend) -> None:
    elements = _permits(3)
    missing = KernelElement("fw", "nosuchset", (7,), None, "", None)
    step = Step("fw", backend.layout.namespace("fw"), "nft")
    step.elements = [("add", elements[1]), ("add", missing), ("add", elements[2])]
    step.owners = [elements[1].ident, missing.ident, elements[2].ident]
    with pytest.raises(tools.ToolError, match="add element of set nosuchset") as info:
        step.run(backend.sessions)
    assert info.value.line == 2
    assert not [o for o in backend.kernel_objects(["fw"]).values() if isinstance(o, KernelElement)]
