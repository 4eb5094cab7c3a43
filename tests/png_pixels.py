"""Decoding a PNG screenshot with zlib, struct and numpy, to tell a picture from a blank.

Enough of PNG for what Chromium writes: 8-bit RGB or RGBA, not interlaced, every
filter type (PNG spec §9). Not a general decoder.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}  # colour type -> channels (RGB, RGBA)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> npt.NDArray[np.uint8]:
    """The pixels as an array of shape (height, width, channels)."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG")
    pos, chunks = len(SIGNATURE), []
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _comp, _filt, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or interlace or colour not in _CHANNELS:
                raise ValueError(f"unsupported PNG: depth {depth}, colour {colour}")
            channels = _CHANNELS[colour]
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.int64)
    for y in range(height):
        kind, line = int(raw[y, 0]), raw[y, 1:].astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: a running sum along the row, per channel
            cur = np.cumsum(line.reshape(width, channels), axis=0).reshape(stride) % 256
        elif kind == 2:  # Up
            cur = (line + prev) % 256
        else:  # Average, Paeth: each byte needs the one decoded just before it
            row, up, filt = [0] * stride, prev.tolist(), line.tolist()
            for x in range(stride):
                left = row[x - channels] if x >= channels else 0
                upper_left = up[x - channels] if x >= channels else 0
                pred = (left + up[x]) // 2 if kind == 3 else _paeth(left, up[x], upper_left)
                row[x] = (filt[x] + pred) % 256
            cur = np.array(row, np.int64)
        out[y] = cur
        prev = cur
    return out.reshape(height, width, channels)


def distinct_colours(pixels: npt.NDArray[np.uint8]) -> int:
    """How many different RGB colours the picture uses."""
    rgb = pixels[..., :3].reshape(-1, 3)
    return len(np.unique(rgb, axis=0))


def ink_fraction(pixels: npt.NDArray[np.uint8]) -> float:
    """The share of pixels that differ from the most common colour (the background)."""
    rgb = pixels[..., :3].reshape(-1, 3)
    colours, counts = np.unique(rgb, axis=0, return_counts=True)
    background = colours[int(np.argmax(counts))]
    return float(np.mean(np.any(rgb != background, axis=1)))
