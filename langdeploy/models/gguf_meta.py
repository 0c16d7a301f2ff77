"""A small, fast reader for GGUF headers: metadata and tensor shapes, never the weights.

The `gguf` package's reader decodes every tokenizer array into Python objects (about 9 s for a
135M model here); a model card needs a few keys, so this reader skips arrays it does not keep.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langdeploy.errors import LangdeployError

_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_STRING, _ARRAY = 8, 9

# llama.cpp's LLAMA_FTYPE values, as stored in general.file_type.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE",
}  # fmt: skip


@dataclass
class GGUFHeader:
    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    array_lengths: dict[str, int] = field(default_factory=dict)
    n_params: int = 0
    n_tensors: int = 0


class _Cursor:
    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str, size: int) -> Any:
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += size
        return value

    def string(self, keep: bool = True) -> str:
        n = self.unpack("<Q", 8)
        start = self.pos
        self.pos += n
        return bytes(self.buf[start : self.pos]).decode("utf-8", "replace") if keep else ""

    def value(self, vtype: int, keep: bool = True) -> Any:
        if vtype in _SCALARS:
            fmt, size = _SCALARS[vtype]
            return self.unpack(fmt, size)
        if vtype == _STRING:
            return self.string(keep)
        if vtype == _ARRAY:
            etype = self.unpack("<I", 4)
            count = self.unpack("<Q", 8)
            if etype in _SCALARS and not keep:
                self.pos += _SCALARS[etype][1] * count
                return count
            items = [self.value(etype, keep) for _ in range(count)]
            return items if keep else count
        raise ValueError(f"unknown GGUF value type {vtype}")


def read_gguf_header(path: Path, keep_arrays: int = 64) -> GGUFHeader:
    """Read metadata and tensor shapes. Arrays longer than ``keep_arrays`` keep only their length."""
    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if buf[:4] != b"GGUF":
                raise LangdeployError(
                    f"{path} is not a GGUF file (it does not start with the GGUF magic).",
                    fix="Point model.name at a .gguf file, or convert the model with llama.cpp.",
                )
            cur = _Cursor(buf)
            cur.pos = 4
            header = GGUFHeader(version=cur.unpack("<I", 4))
            n_tensors = cur.unpack("<Q", 8)
            n_kv = cur.unpack("<Q", 8)
            for _ in range(n_kv):
                key = cur.string()
                vtype = cur.unpack("<I", 4)
                if vtype == _ARRAY:
                    # Peek at the length to decide whether to decode the items.
                    count = struct.unpack_from("<Q", buf, cur.pos + 4)[0]
                    keep = count <= keep_arrays
                    value = cur.value(vtype, keep)
                    header.array_lengths[key] = count
                    if keep:
                        header.metadata[key] = value
                else:
                    header.metadata[key] = cur.value(vtype)
            total = 0
            for _ in range(n_tensors):
                cur.string(keep=False)
                n_dims = cur.unpack("<I", 4)
                n = 1
                for _ in range(n_dims):
                    n *= cur.unpack("<Q", 8)
                cur.pos += 4 + 8  # tensor type, data offset
                total += n
            header.n_params = total
            header.n_tensors = n_tensors
            return header
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise LangdeployError(
            f"{path} is a truncated or corrupt GGUF file ({exc}).",
            fix="Re-download or re-export the model file.",
        ) from None
