"""Images in and out: decode files and payloads, fit frames to a model, thumbnails.

Images inside edgeknn are RGB ``uint8`` numpy arrays of shape (H, W, 3).
Decoding errors become :class:`ImageError` naming the file or payload.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeknn.errors import ImageError

ResizePolicy = Literal["center-crop", "squash"]
RESIZE_POLICIES: tuple[str, ...] = ("center-crop", "squash")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

# What decoding one image may cost.  Pillow decodes at full size (only JPEG can
# decode at 1/2, 1/4 or 1/8 scale), so memory follows the pixel count: up to 9
# bytes per pixel at the peak for PNG, GIF, TIFF, BMP and progressive JPEG
# (measured: tests/test_image_budget.py), and 17 for WebP (libwebp decodes
# through two RGBA canvases).  With a margin, the default cap keeps one
# uploaded image (decoded with max_side) under 160 MB on top of the process:
# a Pi with 1 GB survives any payload.  16 Mpx takes a 4608x3456 photo.
MAX_PIXELS = 16_000_000
DECODE_BYTES_PER_PIXEL = 10
_BYTES_PER_PIXEL = {"WEBP": 18}
DECODE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# Image files on the device are the owner's own (teach, eval): they keep the old,
# larger cap rather than refusing big camera photos.
FILE_MAX_PIXELS = 50_000_000

# EXIF orientation -> the transpose that shows the image upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}


def decode_budget(max_pixels: int = MAX_PIXELS) -> int:
    """Bytes decoding one image may take at the peak (the documented bound)."""
    return max_pixels * DECODE_BYTES_PER_PIXEL


def pixel_limit(image_format: str | None, max_pixels: int = MAX_PIXELS) -> int:
    """The most pixels an image of this format may have to stay within the budget."""
    per_pixel = _BYTES_PER_PIXEL.get(image_format or "", DECODE_BYTES_PER_PIXEL)
    return decode_budget(max_pixels) // per_pixel


def load_image(path: str | Path, *, max_pixels: int = FILE_MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8, applying its EXIF orientation."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"image {path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, str(path), max_pixels=max_pixels)


def decode_image(data: bytes, name: str = "image payload", *, max_pixels: int = MAX_PIXELS,
                 max_side: int | None = None) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, WebP, GIF, BMP, TIFF) as upright RGB uint8.

    An image over ``max_pixels`` (fewer for WebP, see :func:`pixel_limit`) is
    refused from its header, before any pixel is decoded.  With ``max_side``
    the result is shrunk to fit that square, and JPEGs are decoded at reduced
    scale straight away, so a big photo costs little more than the result.
    """
    if not data:
        raise ImageError(f"{name}: empty, not an image")
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 M pixels; the pixel limit below refuses such images anyway.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=DECODE_FORMATS)
        with opened as img:
            limit = pixel_limit(img.format, max_pixels)
            if img.width * img.height > limit:
                raise ImageError(
                    f"{name}: {img.width}x{img.height} {img.format} is too large an image "
                    f"(limit {limit / 1e6:.1f} Mpx); send it smaller")
            upright = _UPRIGHT.get(img.getexif().get(0x0112, 1))
            if max_side and img.format == "JPEG":
                img.draft("RGB", (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale
            img.load()  # a truncated file fails here, not later
            rgb = _shrunk(img, max_side) if max_side else img.convert("RGB")
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: too large an image ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: damaged or truncated image ({exc})") from None
    if upright is not None:
        rgb = rgb.transpose(upright)
    return np.asarray(rgb, dtype=np.uint8)


def _shrunk(img: Image.Image, max_side: int) -> Image.Image:
    """An RGB copy that fits in max_side x max_side, made without full-size copies."""
    if img.mode not in ("RGB", "RGBA", "L", "LA"):  # palette, 1-bit, 16-bit: reduce needs these
        img = img.convert("RGB")  # alpha would be dropped at the end anyway
    factor = max(img.size) // max_side
    if factor > 1:
        img = img.reduce(factor)  # a box filter by an integer factor: cheap and exact
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return img.convert("RGB")


def as_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Check an array is an RGB uint8 image (H, W, 3); greyscale gets three channels."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageError(f"{name}: expected an RGB uint8 array (H, W, 3), got {image.dtype} {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"{name}: image has no pixels")
    return image


@dataclass(frozen=True)
class Crop:
    """The region of the original frame that was resized into the model input."""

    x: float
    y: float
    width: float
    height: float
    frame_width: int
    frame_height: int


def crop_for(frame_w: int, frame_h: int, model_w: int, model_h: int, policy: str) -> Crop:
    """The region a resize policy takes from a frame (pure geometry)."""
    if policy == "squash":
        return Crop(0, 0, frame_w, frame_h, frame_w, frame_h)
    # "center-crop", the other of RESIZE_POLICIES (the config allows no third)
    target = model_w / model_h
    if frame_w / frame_h > target:  # too wide: cut the sides
        w = frame_h * target
        return Crop((frame_w - w) / 2, 0, w, frame_h, frame_w, frame_h)
    h = frame_w / target
    return Crop(0, (frame_h - h) / 2, frame_w, h, frame_w, frame_h)


def fit(image: np.ndarray, width: int, height: int, policy: str = "center-crop") -> tuple[np.ndarray, Crop]:
    """Resize an RGB frame to a model's input size; return it and the crop it came from."""
    h, w = image.shape[:2]
    crop = crop_for(w, h, width, height, policy)
    if (w, h) == (width, height):
        return image, crop
    box = (crop.x, crop.y, crop.x + crop.width, crop.y + crop.height)
    resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR, box=box)
    return np.asarray(resized, dtype=np.uint8), crop


CORNER_SCALE = 0.85  # side of a corner view, as a share of the region the model sees


def corner_views(image: np.ndarray, width: int, height: int, policy: str = "center-crop",
                 scale: float = CORNER_SCALE) -> list[np.ndarray]:
    """The four corner crops (``scale`` of each side) of the region ``fit`` takes, each at the
    model's input size: extra teach-time views for the few-shot head (``classifier.views``)."""
    c = crop_for(image.shape[1], image.shape[0], width, height, policy)
    cw, ch = c.width * scale, c.height * scale
    src = Image.fromarray(image)
    out = []
    for x0, y0 in ((c.x, c.y), (c.x + c.width - cw, c.y), (c.x, c.y + c.height - ch),
                   (c.x + c.width - cw, c.y + c.height - ch)):
        view = src.resize((width, height), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
        out.append(np.asarray(view, dtype=np.uint8))
    return out


def crop_region(image: np.ndarray, box_px: tuple[int, int, int, int]) -> np.ndarray:
    """Cut a pixel box (x0, y0, x1, y1) out of a frame, clipped to the frame."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box_px
    x0, x1 = max(0, min(w, x0)), max(0, min(w, x1))
    y0, y1 = max(0, min(h, y0)), max(0, min(h, y1))
    if x1 <= x0 or y1 <= y0:
        raise ImageError(f"box {box_px} lies outside the {w}x{h} frame")
    return image[y0:y1, x0:x1]


def encode_jpeg(image: np.ndarray, max_side: int | None = None, quality: int = 85) -> bytes:
    """Encode an RGB frame as JPEG, shrunk so its longest side is at most ``max_side``."""
    img = Image.fromarray(image)
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def list_images(folder: Path) -> list[Path]:
    """Image files directly in a folder, sorted by name (hidden files skipped)."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
