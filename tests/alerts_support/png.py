"""Just enough PNG decoding to check a screenshot without Pillow: size and pixel colours."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Png:
    width: int
    height: int
    bit_depth: int
    colour_type: int
    data: bytes  # decompressed, still filtered


def read_png(raw: bytes) -> Png:
    if not raw.startswith(SIGNATURE):
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, [], None
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos:pos + 4])
        kind = raw[pos + 4:pos + 8]
        body = raw[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", raw[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"bad CRC in {kind!r}")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if ihdr is None:
        raise ValueError("no IHDR")
    width, height, depth, colour, _, _, interlace = ihdr
    if interlace:
        raise ValueError("interlaced PNGs are not supported here")
    return Png(width, height, depth, colour, zlib.decompress(b"".join(idat)))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def colours(png: Png, rows: int) -> set[tuple[int, ...]]:
    """Distinct pixel colours in the first ``rows`` rows (8-bit RGB or RGBA only)."""
    if png.bit_depth != 8 or png.colour_type not in (2, 6):
        raise ValueError(f"unsupported PNG format depth={png.bit_depth} colour={png.colour_type}")
    bpp = 3 if png.colour_type == 2 else 4
    stride = png.width * bpp
    prev = bytearray(stride)
    seen: set[tuple[int, ...]] = set()
    for y in range(min(rows, png.height)):
        start = y * (stride + 1)
        ftype = png.data[start]
        line = bytearray(png.data[start + 1:start + 1 + stride])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((x + p) & 0xFF for x, p in zip(line, prev, strict=True))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                upleft = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, prev[i], upleft)) & 0xFF
        for i in range(0, stride, bpp):
            seen.add(tuple(line[i:i + 3]))
        prev = line
    return seen
