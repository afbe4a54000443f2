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
from PIL import Image, ImageOps, UnidentifiedImageError

from edgeknn.errors import ImageError

ResizePolicy = Literal["center-crop", "squash"]
RESIZE_POLICIES: tuple[str, ...] = ("center-crop", "squash")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

# Refuse absurd images before Pillow allocates them (a 10 MB PNG can claim 60k x 60k).
MAX_PIXELS = 50_000_000


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8, applying its EXIF orientation."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"image {path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, str(path))


def decode_image(data: bytes, name: str = "image payload") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, ...) as RGB uint8."""
    if not data:
        raise ImageError(f"{name}: empty, not an image")
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 M pixels; MAX_PIXELS below refuses such images anyway.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
        with opened as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"{name}: {img.width}x{img.height} is too large an image")
            img.load()  # a truncated file fails here, not later
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{name}: damaged or truncated image ({exc})") from None
    return np.asarray(rgb, dtype=np.uint8)


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
    if policy != "center-crop":
        raise ValueError(f"resize policy {policy!r} is not one of {RESIZE_POLICIES}")
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
