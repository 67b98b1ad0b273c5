"""Renderers: kernel objects (pure data) and the text or JSON each tool reads (``ip -batch``, ``nft -j -f``,
``tc -batch``). Pure functions of model objects, no I/O: the Linux backend and the exporters share them."""

from netscaffold.formats.render.objects import (
    MAIN_TABLE,
    ROUTE_PROTOCOLS,
    KernelClass,
    KernelElement,
    KernelFilter,
    KernelObject,
    KernelRoute,
    KernelRule,
    origin_of_protocol,
    quantize_weights,
)

__all__ = [
    "MAIN_TABLE",
    "ROUTE_PROTOCOLS",
    "KernelClass",
    "KernelElement",
    "KernelFilter",
    "KernelObject",
    "KernelRoute",
    "KernelRule",
    "origin_of_protocol",
    "quantize_weights",
]
