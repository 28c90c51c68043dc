"""A small reader for R's ``.rda`` files (``save()`` output), enough for data frames.

R writes ``.rda`` files as a compressed (gzip, bzip2 or xz) stream that starts
with ``RDX2`` or ``RDX3`` and then holds one serialized pairlist of
``name = object`` bindings in the big-endian XDR format. This module decodes
the parts of that format that data sets use: logical, integer, double and
character vectors, lists, pairlists, symbols, attributes and references, plus
the compact integer/real sequences of format version 3. It returns plain
Python and NumPy objects, so reading the UCI data sets shipped by R packages
(e.g. Debian's ``r-cran-mlbench``) needs neither R nor pandas.

Only what :func:`read_rda` documents is supported; anything else (closures,
environments with content, bytecode, ASCII or native-binary files) raises a
``ValueError`` that names the unsupported part.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# SEXP type codes (R's Rinternals.h) and the serializer's special codes (serialize.c)
NILSXP, SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP = 0, 1, 2, 9, 10, 13, 14, 16, 19
ALTREP_SXP, EMPTYENV_SXP, BASEENV_SXP, GLOBALENV_SXP, NILVALUE_SXP, REFSXP = 238, 242, 241, 253, 254, 255
NA_INTEGER = -(2 ** 31)


@dataclass
class RObject:
    """An R vector or list with its attributes (``attrs``: name -> value, in file order)."""

    value: object
    attrs: dict = field(default_factory=dict)

    @property
    def r_class(self) -> list[str]:
        cls = self.attrs.get("class")
        return list(cls.value) if isinstance(cls, RObject) else []


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.refs = data, 0, []

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated .rda file: the serialized data ends early")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.int()
        if n == -1:  # long vector: two more ints
            hi, lo = self.int(), self.int()
            n = (hi << 32) + (lo & 0xFFFFFFFF)
        return n

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind in (NILVALUE_SXP, EMPTYENV_SXP, BASEENV_SXP, GLOBALENV_SXP):
            return None
        if kind == REFSXP:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == LISTSXP:
            return self._pairlist(has_attr, has_tag)
        if kind == CHARSXP:
            n = self.int()
            return None if n == -1 else self.take(n).decode("utf-8", errors="replace")
        if kind == ALTREP_SXP:
            return self._altrep()
        if kind in (LGLSXP, INTSXP):
            n = self.length()
            value = np.frombuffer(self.take(4 * n), dtype=">i4").astype(np.int64)
        elif kind == REALSXP:
            n = self.length()
            value = np.frombuffer(self.take(8 * n), dtype=">f8").astype(np.float64)
        elif kind in (STRSXP, VECSXP):   # character vector (of CHARSXPs) or list: one item per element
            value = [self.item() for _ in range(self.length())]
        else:
            raise ValueError(f"unsupported R object type {kind} in the .rda file (only data sets are read)")
        attrs = self._attrs() if has_attr else {}
        return RObject(value, attrs)

    def _pairlist(self, has_attr: bool, has_tag: bool) -> dict:
        out = {}
        while True:
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            out[tag if tag is not None else len(out)] = self.item()
            flags = self.int()   # the CDR: another LISTSXP cell or the terminating NILVALUE
            kind = flags & 0xFF
            if kind == NILVALUE_SXP:
                return out
            if kind != LISTSXP:
                raise ValueError(f"malformed pairlist in the .rda file (element of type {kind})")
            has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))

    def _attrs(self) -> dict:
        attrs = self.item()
        if not isinstance(attrs, dict):
            raise ValueError("malformed attribute list in the .rda file")
        return attrs

    def _altrep(self):
        info, state, attrs = self.item(), self.item(), self.item()
        name = next(iter(info.values())) if isinstance(info, dict) and info else None
        if name in ("compact_intseq", "compact_realseq"):
            n, start, step = (float(v) for v in state.value)
            value = start + step * np.arange(int(n))
            value = value.astype(np.int64 if name == "compact_intseq" else np.float64)
        elif name in ("wrap_integer", "wrap_real", "wrap_logical", "wrap_string"):
            value = state.value[0].value
        else:
            raise ValueError(f"unsupported compact R vector {name!r} in the .rda file")
        return RObject(value, attrs if isinstance(attrs, dict) else {})


def _decompress(raw: bytes) -> bytes:
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    return raw


def read_rda(path) -> dict:
    """Objects saved in an ``.rda`` file.

    Parameters
    ----------
    path : path-like
        A file written by R's ``save()`` (gzip, bzip2, xz or no compression; XDR format).

    Returns
    -------
    dict of str -> RObject
        Each saved name and its object; a data frame is an ``RObject`` whose
        ``value`` is the list of columns and whose ``attrs`` hold ``names``,
        ``class`` and ``row.names``. Factors are ``RObject`` integer codes
        (1-based, ``NA`` = -2**31) with a ``levels`` attribute.
    """
    path = Path(path)
    try:
        data = _decompress(path.read_bytes())
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:   # zlib.error: damaged gzip data
        raise ValueError(f"{path} is not a readable .rda file ({exc}); fetch it again") from exc
    if data[:5] not in (b"RDX2\n", b"RDX3\n") or data[5:7] != b"X\n":
        raise ValueError(f"{path} is not an R data file in XDR format (it should start with RDX2 or RDX3); "
                         "fetch it again, or re-save it in R with save(..., ascii = FALSE)")
    r = _Reader(data[7:])
    version = r.int()
    r.int(), r.int()   # writer's and minimal reader's R versions
    if version == 3:
        r.take(r.int())   # native encoding name
    elif version != 2:
        raise ValueError(f"{path}: unsupported serialization format version {version}")
    try:
        out = r.item()
    except (struct.error, IndexError) as exc:
        raise ValueError(f"{path} is corrupt ({exc}); fetch it again") from exc
    if not isinstance(out, dict):
        raise ValueError(f"{path} does not hold saved R objects (top level is not a pairlist)")
    return out


def data_frame(obj: RObject) -> tuple[list[str], list[RObject]]:
    """Column names and columns of a data frame read by :func:`read_rda`."""
    if not isinstance(obj, RObject) or "data.frame" not in obj.r_class:
        raise ValueError("expected an R data frame")
    return list(obj.attrs["names"].value), list(obj.value)


def factor_codes(col: RObject) -> tuple[np.ndarray, list[str]]:
    """0-based int64 codes (-1 for NA) and level names of an R factor column."""
    if not isinstance(col, RObject) or "levels" not in col.attrs:
        raise ValueError("expected an R factor column (integer codes with a levels attribute)")
    codes = np.asarray(col.value, dtype=np.int64)
    return np.where(codes == NA_INTEGER, -1, codes - 1), list(col.attrs["levels"].value)
