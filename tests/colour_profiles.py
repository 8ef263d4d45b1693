"""ICC colour profiles of real colour spaces, built byte by byte from their published definitions, and an
independent conversion of their colours to sRGB (plain numpy, the textbook matrices) to compare LittleCMS against.

Display P3 (Apple's: the P3 primaries, a D65 white, the sRGB curve) and Adobe RGB (1998) (its primaries, D65, a
gamma of 563/256) are matrix/curve profiles: RGB -> linear by the curve, linear -> XYZ by the primaries' matrix.
Their colorants are stored adapted to the ICC's D50 white (Bradford), as the ICC requires; the adaptation cancels in
a conversion between two such profiles, so the reference converts with the D65 matrices alone.
"""

from __future__ import annotations

import struct

import numpy as np

D65 = (0.3127, 0.3290)
D50_XYZ = (0.9642, 1.0, 0.8249)
PRIMARIES = {
    "srgb": ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060)),
    "display-p3": ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)),
    "adobe-rgb": ((0.640, 0.330), (0.210, 0.710), (0.150, 0.060)),
}
DESCRIPTIONS = {"display-p3": "Display P3", "adobe-rgb": "Adobe RGB (1998)"}
ADOBE_GAMMA = 563 / 256
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz(space: str) -> np.ndarray:
    """The matrix from linear RGB of `space` to XYZ, white D65 (Y of white 1)."""
    columns = np.stack([_xyz(xy) for xy in PRIMARIES[space]], axis=1)
    scale = np.linalg.solve(columns, _xyz(D65))
    return columns * scale


def _to_d50(matrix: np.ndarray) -> np.ndarray:
    cone_source, cone_target = BRADFORD @ _xyz(D65), BRADFORD @ np.array(D50_XYZ)
    adapt = np.linalg.inv(BRADFORD) @ np.diag(cone_target / cone_source) @ BRADFORD
    return adapt @ matrix


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(values: np.ndarray | tuple[float, float, float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(float(v)) for v in values)


def _curve_tag(space: str) -> bytes:
    if space == "adobe-rgb":  # curv with one entry: a gamma as u8Fixed8
        return b"curv" + bytes(4) + struct.pack(">I", 1) + struct.pack(">H", round(ADOBE_GAMMA * 256)) + bytes(2)
    parameters = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)  # the sRGB curve, parametric type 3
    return b"para" + bytes(4) + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in parameters)


def _description_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\x00"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(4 + 4 + 2 + 1 + 67)


def icc_profile(space: str) -> bytes:
    """The ICC (version 2.1, display class) profile of `space`: 'display-p3' or 'adobe-rgb'."""
    colorants = _to_d50(rgb_to_xyz(space))
    tags = [
        (b"desc", _description_tag(DESCRIPTIONS[space])),
        (b"cprt", b"text" + bytes(4) + b"No copyright, test profile\x00"),
        (b"wtpt", _xyz_tag(D50_XYZ)),
        (b"rXYZ", _xyz_tag(colorants[:, 0])),
        (b"gXYZ", _xyz_tag(colorants[:, 1])),
        (b"bXYZ", _xyz_tag(colorants[:, 2])),
        (b"rTRC", _curve_tag(space)),
    ]
    tags += [(b"gTRC", tags[-1][1]), (b"bTRC", tags[-1][1])]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        padded = body + bytes(-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += padded
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"none"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + bytes(12)  # date
        + b"acsp"
        + bytes(4 * 4 + 8)  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # perceptual
        + b"".join(_s15(v) for v in D50_XYZ)
        + bytes(4 + 16 + 28)  # creator, id, reserved
    )
    return header + struct.pack(">I", len(tags)) + table + data


def _srgb_decode(values: np.ndarray) -> np.ndarray:
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def _srgb_encode(values: np.ndarray) -> np.ndarray:
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * np.power(values, 1 / 2.4) - 0.055)


def to_srgb(pixels: np.ndarray, space: str) -> np.ndarray:
    """uint8 RGB `pixels` [..., 3] of `space` as sRGB uint8 (out-of-gamut colours clipped), by the textbook route:
    decode the curve, the D65 matrices to linear sRGB, encode the sRGB curve."""
    values = pixels.astype(np.float64) / 255.0
    linear = values**ADOBE_GAMMA if space == "adobe-rgb" else _srgb_decode(values)
    matrix = np.linalg.inv(rgb_to_xyz("srgb")) @ rgb_to_xyz(space)
    srgb = np.clip(linear @ matrix.T, 0.0, 1.0)
    return np.round(_srgb_encode(srgb) * 255.0).astype(np.uint8)
