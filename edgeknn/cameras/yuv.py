"""Pure pixel plumbing for the Pi camera: YUV420 to RGB, libcamera's format names, lores size.

Kept apart from the picamera2 adapter so it is tested off the Pi.
"""

from __future__ import annotations

import math

import numpy as np

from edgeknn.errors import CameraError

# Y'CbCr -> R'G'B' for the colour spaces libcamera gives a YUV stream:
# (Kr, Kb, full range?).  "sycc" is JPEG's full-range BT.601, which is what
# PIL's "YCbCr" mode uses and what the adapter asks the ISP for.
COLOUR_SPACES: dict[str, tuple[float, float, bool]] = {
    "sycc": (0.299, 0.114, True),
    "smpte170m": (0.299, 0.114, False),  # BT.601, limited range (picamera2's SD video default)
    "rec709": (0.2126, 0.0722, False),  # BT.709, limited range (its HD video default)
}


def yuv420_to_rgb(
    array: np.ndarray, width: int, height: int, colour_space: str = "sycc"
) -> np.ndarray:
    """Convert a picamera2 YUV420 array to RGB uint8 (height, width, 3).

    picamera2 returns a YUV420 buffer as a 2-D array of ``height * 3 // 2`` rows
    of ``stride`` bytes (stride >= width; the ISP pads rows).  In memory: the Y
    plane (height rows of stride bytes), then U and V planes of height/2 rows of
    stride/2 bytes each.  Chroma is upsampled by repeating each sample 2x2.
    """
    if width % 2 or height % 2:
        raise CameraError(f"YUV420 frame {width}x{height}: width and height must be even")
    if array.dtype != np.uint8 or array.ndim != 2 or array.shape[0] != height * 3 // 2:
        raise CameraError(
            f"YUV420 frame {width}x{height}: expected a uint8 array of {height * 3 // 2} rows, "
            f"got {array.dtype} {array.shape}"
        )
    stride = array.shape[1]
    if stride < width or stride % 2:
        raise CameraError(f"YUV420 frame {width}x{height}: row stride {stride} is too short or odd")
    flat = array.reshape(-1)
    y = flat[: height * stride].reshape(height, stride)[:, :width]
    plane = (height // 2) * (stride // 2)
    u0 = height * stride
    u = flat[u0: u0 + plane].reshape(height // 2, stride // 2)[:, : width // 2]
    v = flat[u0 + plane: u0 + 2 * plane].reshape(height // 2, stride // 2)[:, : width // 2]
    return ycbcr_to_rgb(y, _up2(u), _up2(v), colour_space)


def _up2(plane: np.ndarray) -> np.ndarray:
    return plane.repeat(2, axis=0).repeat(2, axis=1)


def ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, colour_space: str) -> np.ndarray:
    """Full-resolution Y, Cb, Cr planes (uint8) to RGB uint8, for one of :data:`COLOUR_SPACES`."""
    try:
        kr, kb, full = COLOUR_SPACES[colour_space]
    except KeyError:
        raise CameraError(
            f"colour space {colour_space!r} is not one of {', '.join(COLOUR_SPACES)}"
        ) from None
    yf = y.astype(np.float32)
    cbf = cb.astype(np.float32) - 128.0
    crf = cr.astype(np.float32) - 128.0
    if not full:  # limited range: Y 16..235, chroma 16..240
        yf = (yf - 16.0) * (255.0 / 219.0)
        cbf *= 255.0 / 224.0
        crf *= 255.0 / 224.0
    kg = 1.0 - kr - kb
    r = yf + 2.0 * (1.0 - kr) * crf
    b = yf + 2.0 * (1.0 - kb) * cbf
    g = yf - (2.0 * kb * (1.0 - kb) / kg) * cbf - (2.0 * kr * (1.0 - kr) / kg) * crf
    rgb = np.stack([r, g, b], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


# libcamera names packed RGB formats by the order of the colour components in
# a little-endian word, so in memory (and in the numpy array picamera2 hands
# out) the bytes come the other way round: "BGR888" is R, G, B per pixel and
# "RGB888" is B, G, R.  The adapter asks for "BGR888" so no shuffle is needed;
# this table exists because a camera can hand back another format than asked.
CHANNELS_FOR_RGB: dict[str, tuple[int, int, int]] = {
    "BGR888": (0, 1, 2),
    "RGB888": (2, 1, 0),
    "XBGR8888": (0, 1, 2),  # R, G, B, X
    "XRGB8888": (2, 1, 0),  # B, G, R, X
}
MAIN_FORMAT = "BGR888"  # numpy-RGB order; see above


def main_to_rgb(array: np.ndarray, fmt: str) -> np.ndarray:
    """A picamera2 main-stream array of libcamera format ``fmt`` as RGB uint8 (H, W, 3)."""
    try:
        order = CHANNELS_FOR_RGB[fmt]
    except KeyError:
        raise CameraError(f"picamera2 stream format {fmt} is not an RGB format edgeknn reads") \
            from None
    if order == (0, 1, 2) and array.shape[-1] == 3:
        return array
    return np.ascontiguousarray(array[..., list(order)])


def lores_size(main: tuple[int, int], model: tuple[int, int]) -> tuple[int, int] | None:
    """The smallest even size with ``main``'s aspect ratio that covers ``model``.

    The ISP scales the whole field of view into the lores stream, so keeping the
    main stream's aspect ratio leaves the model's resize policy (center-crop or
    squash) to decide the framing, as it does for every other camera.  None
    when the model is larger than the main stream (use the main stream then).
    """
    mw, mh = main
    tw, th = model
    scale = max(tw / mw, th / mh)
    w = 2 * math.ceil(mw * scale / 2 - 1e-9)
    h = 2 * math.ceil(mh * scale / 2 - 1e-9)
    if w > mw or h > mh:
        return None
    return w, h
