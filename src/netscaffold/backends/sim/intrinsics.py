"""Two numba intrinsics for the emulator's event loop: ``borrowed`` array views and ``prefetch``.

``borrowed``: views of arrays (or tuples of arrays) that numba does not reference-count.

Numba counts references to every array it binds to a variable: each tuple unpacking, each argument of an
inlined function is an atomic increment and decrement of the array's owner, and LLVM's reference-count
pruning removes only some of them. The emulator's event loop unpacks tuples of up to 65 arrays per event,
and those atomic operations were about half of its time (``gdb`` samples of ``kernel.run``: 12 of 21 in
``NRT_incref`` / ``NRT_decref``). A borrowed view is the same array with no owner (a null meminfo), for
which numba's reference counting is a null check.

Safe only while the original is alive and not resized: use it for the arguments of a jitted entry point,
inside that call, and never return or store it. The view keeps its ``parent`` (the NumPy object it came
from), so boxing one by mistake gives back that object rather than an unowned buffer.
"""

from __future__ import annotations

from typing import Any, cast

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic


def _borrow_value(context: Any, builder: Any, ty: Any, value: Any) -> Any:
    if isinstance(ty, types.Array):
        array = context.make_array(ty)(context, builder, value=value)
        array.meminfo = cast(Any, cgutils).get_null_value(array.meminfo.type)
        return array._getvalue()
    if isinstance(ty, types.BaseTuple):
        out = value
        for i, item_type in enumerate(cast(Any, ty).types):
            item = builder.extract_value(value, i)
            out = builder.insert_value(out, _borrow_value(context, builder, item_type, item), i)
        return out
    return value


def _borrowed(typingctx: Any, value: Any) -> Any:  # noqa: ARG001  (numba's intrinsic signature)
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return _borrow_value(context, builder, signature.args[0], args[0])

    return value(value), codegen


borrowed: Any = intrinsic(_borrowed)
"""``borrowed(value)``: ``value`` with every array in it (recursively through tuples) as an unowned view."""


def _prefetch(typingctx: Any, array: Any, index: Any) -> Any:  # noqa: ARG001  (numba's intrinsic signature)
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        pointer = cast(Any, cgutils).get_item_pointer(
            context, builder, array_type, view, [args[1]], wraparound=False
        )
        byte_pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        signature_ir = ir.FunctionType(ir.VoidType(), [byte_pointer.type, i32, i32, i32])
        insert = cast(Any, cgutils).get_or_insert_function
        function = insert(builder.module, signature_ir, "llvm.prefetch.p0i8")
        builder.call(function, [byte_pointer, i32(0), i32(3), i32(1)])  # read, keep in all caches, data
        return context.get_dummy_value()

    return types.none(array, types.intp), codegen


prefetch: Any = intrinsic(_prefetch)
"""``prefetch(array, index)``: ask the CPU to bring ``array[index]`` into its caches (a hint: no effect on
results, no bounds check needed since nothing is read). The event loop prefetches what the next arrivals
will touch (their pair's entries, then their ECMP path), which otherwise costs a chain of dependent cache
misses per flow: per-pair tables of 16k pairs and path tables of 10+ MB on a fat-tree k=8."""
