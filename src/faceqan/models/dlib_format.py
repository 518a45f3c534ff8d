"""Reader for dlib's binary serialisation, enough to pull the layers out of a dnn .dat file.

dlib writes an integer as a control byte (its low nibble the byte count, 0x80 when negative)
followed by the little-endian magnitude; a scalar float as an int64 mantissa and an int16
exponent (m * 2**e); a string as its length then its bytes; a tensor as version 2, four
dims, then raw little-endian float32. A network is written outermost layer first, but each
layer writes its sub-network before its own details, so the layer details appear in
data-flow order (input first). We locate each layer by its tag string and parse what follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DlibFormatError(ValueError):
    """The file is not the dlib network we expect."""


class DlibReader:
    """Sequential reader over the bytes of a dlib-serialised object."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of file at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} at {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little") if size else 0
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        return self._take(self.int()).decode("ascii")

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"unsupported tensor version {version} at {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), dtype="<f4").reshape(shape).copy()


@dataclass
class DlibLayer:
    """One parameterised or pooling layer read from the file, in data-flow order."""

    kind: str
    params: np.ndarray | None = None
    ints: list[int] = field(default_factory=list)


# Tag strings and how many integers follow the params tensor (con) or precede it (fc).
_CONV_TAG = b"\x05con_4"
_AFFINE_TAG = b"\x07affine_"
_FC_TAG = b"\x04fc_2"
_POOL_TAGS = {b"\x0amax_pool_2": "max_pool", b"\x0aavg_pool_2": "avg_pool"}
_INPUT_TAG = b"\x15input_rgb_image_sized"


def _find_all(data: bytes, tag: bytes) -> list[int]:
    found, start = [], 0
    while (i := data.find(tag, start)) != -1:
        found.append(i)
        start = i + 1
    return found


def read_layers(data: bytes) -> tuple[tuple[float, float, float], list[DlibLayer]]:
    """Return the input layer's channel means and the layers in data-flow order."""
    inputs = _find_all(data, _INPUT_TAG)
    if len(inputs) != 1:
        raise DlibFormatError("no input_rgb_image_sized layer: not a dlib face descriptor network")
    reader = DlibReader(data, inputs[0] - 1)
    reader.string()
    means = (reader.float(), reader.float(), reader.float())

    located: list[tuple[int, str]] = []
    for tag, kind in [(_CONV_TAG, "con"), (_AFFINE_TAG, "affine"), (_FC_TAG, "fc"), *((t, k) for t, k in _POOL_TAGS.items())]:
        located += [(i, kind) for i in _find_all(data, tag)]
    located.sort()

    layers = []
    for offset, kind in located:
        reader = DlibReader(data, offset - 1)
        reader.string()
        if kind == "con":
            params = reader.tensor()
            # num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x
            layers.append(DlibLayer(kind, params.ravel(), [reader.int() for _ in range(7)]))
        elif kind == "affine":
            layers.append(DlibLayer(kind, reader.tensor().ravel()))
        elif kind == "fc":
            num_outputs, num_inputs = reader.int(), reader.int()
            layers.append(DlibLayer(kind, reader.tensor().ravel(), [num_outputs, num_inputs]))
        else:
            # window y, x, stride y, x, padding y, x
            layers.append(DlibLayer(kind, None, [reader.int() for _ in range(6)]))
    return means, layers
