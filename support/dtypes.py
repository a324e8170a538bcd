"""The one place that maps IR element types to NumPy dtypes and back, and dense
attributes to arrays and back."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import (
    BytesAttr,
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    Signedness,
    TensorType,
    f16,
    f32,
    f64,
    i1,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Attribute

_FLOATS: dict[type, np.dtype] = {
    Float16Type: np.dtype(np.float16),
    Float32Type: np.dtype(np.float32),
    Float64Type: np.dtype(np.float64),
}

_TO_TYPE: dict[np.dtype, Attribute] = {
    np.dtype(np.float16): f16,
    np.dtype(np.float32): f32,
    np.dtype(np.float64): f64,
    np.dtype(np.bool_): i1,
    np.dtype(np.int8): i8,
    np.dtype(np.int16): i16,
    np.dtype(np.int32): i32,
    np.dtype(np.int64): i64,
    np.dtype(np.uint8): IntegerType(8, Signedness.UNSIGNED),
}


def numpy_dtype(element_type: Attribute) -> np.dtype:
    """NumPy dtype of an IR element type (`f32` -> float32, `i64`/`si64` -> int64, `ui8`
    -> uint8, `i1` -> bool)."""
    if type(element_type) in _FLOATS:
        return _FLOATS[type(element_type)]
    if isinstance(element_type, IntegerType):
        width = element_type.width.data
        if width == 1:
            return np.dtype(np.bool_)
        if width not in (8, 16, 32, 64):
            raise NotImplementedError(f"no NumPy dtype for {element_type}")
        unsigned = element_type.signedness.data == Signedness.UNSIGNED
        return np.dtype(f"{'u' if unsigned else ''}int{width}")
    raise NotImplementedError(f"no NumPy dtype for element type {element_type}")


def element_type(dtype: np.dtype | type) -> Attribute:
    """IR element type of a NumPy dtype (integers are signless, as MLIR's)."""
    dtype = np.dtype(dtype)
    if dtype not in _TO_TYPE:
        raise NotImplementedError(f"no IR element type for NumPy dtype {dtype}")
    return _TO_TYPE[dtype]


def tensor_type(array: np.ndarray) -> TensorType:
    return TensorType(element_type(array.dtype), array.shape)


def to_numpy(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    """A fresh, writable array with the attribute's values (splats expanded)."""
    assert isinstance(attr.type, TensorType)
    dtype = numpy_dtype(attr.type.element_type)
    shape = attr.type.get_shape()
    flat = np.frombuffer(attr.data.data, dtype=dtype)
    if flat.size == 1:
        return np.full(shape, flat[0], dtype=dtype)
    return flat.reshape(shape).copy()


def to_dense(array: np.ndarray, type: TensorType | None = None) -> DenseIntOrFPElementsAttr:
    """A dense attribute holding `array` (stored as a splat when all values are equal)."""
    array = np.asarray(array)
    if type is None:
        type = tensor_type(array)
    array = np.ascontiguousarray(array, dtype=numpy_dtype(type.element_type))
    flat = array.reshape(-1)
    if flat.size > 1 and np.all(flat == flat[0]) and not np.isnan(flat[0]):
        # Bit-identical splat only: +0.0 and -0.0 compare equal but differ.
        if np.all(flat.view(np.uint8).reshape(flat.size, -1) == flat[:1].view(np.uint8)):
            flat = flat[:1]
    return DenseIntOrFPElementsAttr(type, BytesAttr(flat.tobytes()))
