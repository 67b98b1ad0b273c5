"""Per-namespace sessions: a netlink socket and an nftables context that live in one lab namespace.

Both are created by a short-lived thread that enters the namespace (``setns``, which only moves that
thread) and exits; a socket stays in the namespace it was created in, so later reads and nft transactions
run in-process from any thread, without starting ``ip netns exec nft`` (about 8 ms a call) or a pyroute2
namespace proxy (about 70 ms). nft goes through libnftables (the library the ``nft`` binary is a thin
wrapper around, so the JSON in and out is the same); where it cannot be loaded the session falls back to
running ``nft``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.netlink import NetlinkWriter, NftWriter
from netscaffold.errors import BackendError

CLONE_NEWNET = 0x40000000
T = TypeVar("T")
NFT_CTX_OUTPUT_JSON = 1 << 4
_LIB_LOCK = threading.Lock()
_LIBS: dict[str, Any] = {}


def _libc() -> Any:
    with _LIB_LOCK:
        if "c" not in _LIBS:
            _LIBS["c"] = ctypes.CDLL(None, use_errno=True)
        return _LIBS["c"]


def _libnftables() -> Any | None:
    with _LIB_LOCK:
        if "nft" not in _LIBS:
            _LIBS["nft"] = _load_libnftables()
        return _LIBS["nft"]


def _load_libnftables() -> Any | None:
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("nftables") or "libnftables.so.1")
    except OSError:
        return None
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    lib.nft_ctx_new.restype, lib.nft_ctx_new.argtypes = vp, [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [vp]
    lib.nft_ctx_output_set_flags.argtypes = [vp, ctypes.c_uint]
    lib.nft_ctx_buffer_output.argtypes = [vp]
    lib.nft_ctx_buffer_error.argtypes = [vp]
    lib.nft_ctx_get_output_buffer.restype, lib.nft_ctx_get_output_buffer.argtypes = cp, [vp]
    lib.nft_ctx_get_error_buffer.restype, lib.nft_ctx_get_error_buffer.argtypes = cp, [vp]
    lib.nft_run_cmd_from_buffer.restype, lib.nft_run_cmd_from_buffer.argtypes = ctypes.c_int, [vp, cp]
    return lib


class NftContext:
    """One libnftables context (its netlink socket opened in the namespace it was made in)."""

    def __init__(self, lib: Any) -> None:
        self._lib = lib
        self._lock = threading.Lock()
        self._ctx = lib.nft_ctx_new(0)
        if not self._ctx:
            raise BackendError("libnftables: cannot create a context", backend="linux")
        lib.nft_ctx_output_set_flags(self._ctx, NFT_CTX_OUTPUT_JSON)
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)
        self.run("list tables")  # opens the context's netlink socket here, in this namespace

    def run(self, command: str) -> tuple[int, str, str]:
        with self._lock:
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, command.encode())
            out = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
            err = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        return rc, out, err

    def close(self) -> None:
        with self._lock:
            if self._ctx:
                self._lib.nft_ctx_free(self._ctx)
                self._ctx = None


class NamespaceSession:
    """Netlink reads and nft commands in ``netns``; ``close()`` releases the sockets."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        made: dict[str, Any] = {}

        def enter_and_open() -> None:
            try:
                _enter(netns)
                made["netlink"] = NetlinkWriter.open_here()
                made["nftnl"] = NftWriter.open_here()
                lib = _libnftables()
                made["nft"] = NftContext(lib) if lib is not None else None
            except (OSError, BackendError) as exc:
                made["error"] = exc

        worker = threading.Thread(target=enter_and_open, name=f"setns-{netns}")
        worker.start()
        worker.join()
        if "error" in made:
            for key in ("netlink", "nftnl", "nft"):
                if made.get(key) is not None:
                    made[key].close()
            raise BackendError(f"cannot open namespace {netns}: {made['error']}", backend="linux")
        self.netlink: NetlinkWriter = made["netlink"]
        self.nftnl: NftWriter = made["nftnl"]
        self.nft: NftContext | None = made["nft"]

    def nft_json(self, document: dict[str, Any]) -> None:
        """One JSON transaction (all or nothing, as ``nft -j -f``); raises ToolError on refusal."""
        if self.nft is None:
            tools.nft_json(self.netns, document)
            return
        rc, _, err = self.nft.run(json.dumps(document))
        if rc != 0:
            raise tools.ToolError(("nft", "-j", "-f", "-", self.netns), err or "nft refused", None)

    def nft_list(self, what: str) -> dict[str, Any] | None:
        """``nft -j list <what>`` as JSON; None when nft refuses (no such table, say)."""
        if self.nft is None:
            try:
                text = tools.run(["ip", "netns", "exec", self.netns, "nft", "-j", "list", *what.split()])
            except tools.ToolError:
                return None
        else:
            rc, text, _ = self.nft.run(f"list {what}")
            if rc != 0:
                return None
        body: dict[str, Any] = json.loads(text)
        return body

    def close(self) -> None:
        self.netlink.close()
        self.nftnl.close()
        if self.nft is not None:
            self.nft.close()


def _enter(netns: str) -> None:
    """Move the calling thread (only) into ``netns``."""
    fd = os.open(os.path.join(tools.NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc().setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
    finally:
        os.close(fd)


class SessionPool:
    """Sessions by namespace, opened on first use and kept until ``close()``; a session whose namespace
    went away (a lab repaired under us) is reopened."""

    def __init__(self) -> None:
        self._sessions: dict[str, NamespaceSession] = {}
        self._inodes: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, netns: str) -> NamespaceSession:
        inode = _inode(netns)
        with self._lock:
            session = self._sessions.get(netns)
            if session is not None and self._inodes.get(netns) == inode:
                return session
            if session is not None:
                session.close()
            session = NamespaceSession(netns)
            self._sessions[netns], self._inodes[netns] = session, inode
            return session

    def known(self, netns: str) -> bool:
        return netns in self._sessions or os.path.exists(os.path.join(tools.NETNS_DIR, netns))

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()
            self._inodes.clear()

    def __enter__(self) -> SessionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _inode(netns: str) -> int:
    try:
        return os.stat(os.path.join(tools.NETNS_DIR, netns)).st_ino
    except FileNotFoundError:
        raise BackendError(f"namespace {netns} does not exist", backend="linux") from None


def open_in_namespace(netns: str, factory: Callable[[], T]) -> T:
    """``factory()`` run by a thread inside ``netns`` (sockets it makes stay in that namespace)."""
    made: list[T] = []
    errors: list[BaseException] = []

    def enter_and_make() -> None:
        try:
            _enter(netns)
            made.append(factory())
        except (OSError, BackendError) as exc:
            errors.append(exc)

    worker = threading.Thread(target=enter_and_make, name=f"setns-{netns}")
    worker.start()
    worker.join()
    if errors:
        raise BackendError(f"cannot open in namespace {netns}: {errors[0]}", backend="linux")
    return made[0]
