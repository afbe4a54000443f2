"""One uploaded image never takes more memory than images.decode_budget says.

Each bomb is at most 1 MB on the wire and as large in pixels as its format may
be; it is decoded by the real ``add`` parsing in a fresh Python process, whose
peak RSS (VmHWM) is compared before and after.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeknn.errors import CommandError, ImageError
from edgeknn.images import MAX_PIXELS, decode_budget, decode_image, pixel_limit
from edgeknn.mqtt.commands import IMAGE_SIDE, parse_command

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024

MEASURE = """
import base64, json, sys
from PIL import Image
import io
from edgeknn.mqtt.commands import parse_command
from edgeknn.errors import EdgeKnnError

def peak():  # VmHWM: this process's peak RSS (ru_maxrss would start at the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

def add(data):
    payload = json.dumps({"label": "x", "image": base64.b64encode(data).decode()}).encode()
    return parse_command("add", payload)

small = io.BytesIO()
Image.new("RGB", (64, 64)).save(small, "PNG")
add(small.getvalue())  # imports and first-use allocations out of the way
data = open(sys.argv[1], "rb").read()
before = peak()
try:
    shape, error = list(add(data).image.shape), None
except EdgeKnnError as exc:
    shape, error = None, str(exc)
print(json.dumps({"grew": peak() - before, "shape": shape, "error": error}))
"""


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def side(fmt: str) -> int:
    """The side of the largest square image of this format the default cap accepts."""
    return int(pixel_limit(fmt) ** 0.5)


def bombs() -> dict[str, bytes]:
    png, webp, gif = side("PNG"), side("WEBP"), side("GIF")
    jpeg = side("JPEG")
    return {
        "png-rgba": encoded(Image.new("RGBA", (png, png)), "PNG"),
        "png-16bit": encoded(Image.new("I;16", (png, png)), "PNG"),
        "jpeg-progressive-444": encoded(Image.new("RGB", (jpeg, jpeg)), "JPEG", quality=5,
                                        progressive=True, subsampling=0),
        "jpeg-cmyk": encoded(Image.new("CMYK", (jpeg, jpeg)), "JPEG", quality=5),
        "webp-lossless-rgba": encoded(Image.new("RGBA", (webp, webp)), "WEBP", lossless=True),
        "gif-transparent": encoded(Image.new("P", (gif, gif)), "GIF", transparency=0),
    }


@pytest.fixture(scope="module")
def bomb_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    files = {}
    for name, data in bombs().items():
        assert len(data) <= MB, f"{name} is {len(data)} bytes; a bomb here is at most 1 MB"
        files[name] = folder / name
        files[name].write_bytes(data)
    return files


def measure(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


@pytest.mark.parametrize("name", ["png-rgba", "png-16bit", "jpeg-progressive-444", "jpeg-cmyk",
                                  "webp-lossless-rgba", "gif-transparent"])
def test_the_largest_accepted_image_of_each_format_stays_within_the_budget(bomb_files, name):
    result = measure(bomb_files[name])
    assert result["error"] is None
    print(f"{name}: {bomb_files[name].stat().st_size} bytes, peak RSS +{result['grew'] / MB:.0f} MB")
    assert max(result["shape"][:2]) == IMAGE_SIDE  # decoded to the size actually needed
    assert result["grew"] < decode_budget(MAX_PIXELS), (
        f"{name}: peak RSS grew {result['grew'] / MB:.0f} MB; "
        f"the budget is {decode_budget(MAX_PIXELS) / MB:.0f} MB")


@pytest.mark.parametrize("fmt,mode,size", [
    ("PNG", "RGB", (7000, 7000)),  # the 190 KB PNG that took 740 MB
    ("GIF", "P", (8000, 8000)),
    ("WEBP", "RGB", (4000, 4000)),  # under the cap, over WebP's share of it
])
def test_an_image_over_the_cap_is_refused_from_its_header(tmp_path, fmt, mode, size):
    path = tmp_path / "bomb"
    path.write_bytes(encoded(Image.new(mode, size), fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    assert path.stat().st_size <= MB
    result = measure(path)
    assert result["shape"] is None
    assert result["error"].startswith("image: "), result["error"]
    assert "too large an image" in result["error"]
    assert result["grew"] < 16 * MB  # nothing was decoded


def test_the_pixel_cap_is_a_parameter():
    payload = json.dumps({"label": "x", "image": base64.b64encode(
        encoded(Image.new("RGB", (400, 300)), "PNG")).decode()}).encode()
    assert parse_command("add", payload, max_image_pixels=200_000).image.shape == (300, 400, 3)
    with pytest.raises(CommandError, match=r"400x300 PNG is too large an image \(limit 0\.1 Mpx\)"):
        parse_command("add", payload, max_image_pixels=100_000)


def test_a_shrunk_image_keeps_its_exif_orientation_and_colours():
    image = Image.new("RGB", (3000, 1500), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    data = encoded(image, "JPEG", exif=exif, quality=95)
    decoded = decode_image(data, max_side=IMAGE_SIDE)
    assert decoded.shape == (IMAGE_SIDE, IMAGE_SIDE // 2, 3)  # upright: taller than wide
    assert np.abs(decoded.mean(axis=(0, 1)) - (200, 30, 30)).max() < 6


def test_a_palette_image_with_transparency_is_shrunk_to_rgb():
    image = Image.new("P", (2500, 2500))
    decoded = decode_image(encoded(image, "GIF", transparency=0), max_side=IMAGE_SIDE)
    assert decoded.shape == (IMAGE_SIDE, IMAGE_SIDE, 3)


def test_formats_outside_the_list_are_not_decoded():
    with pytest.raises(ImageError, match="not an image"):
        decode_image(encoded(Image.new("RGB", (8, 8)), "PPM"))
