"""Renders characters from the TrueType fonts that ship with matplotlib, with seeded jitter.

Used by the pocket benchmark's ``letters`` and ``photo_digits`` domains. Each call draws one
character on a 2x supersampled canvas with a random font, size, stroke width, rotation and
shift, then downsamples it, so the same character never renders twice the same way while the
whole set stays reproducible from one ``numpy.random.Generator``.
"""

import functools
import os

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Fonts bundled with matplotlib that map Latin letters and digits to their usual code points
# (the BaKoMa cm*.ttf files use their own encoding and are left out).
FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
)

_SUPERSAMPLE = 2


def font_paths():
    """Absolute paths of ``FONT_FILES`` in this matplotlib install; raises if one is missing."""
    font_dir = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    paths = tuple(os.path.join(font_dir, name) for name in FONT_FILES)
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(
            "The glyph renderer needs the fonts bundled with matplotlib. "
            f"Expected them under {font_dir}. Received: missing files {missing}"
        )
    return paths


@functools.lru_cache(maxsize=512)
def _font(path, size):
    return ImageFont.truetype(path, size)


def render(char, rng, size=32, fonts=None):
    """One jittered glyph as a ``float32 (size, size)`` coverage mask in [0, 1] (1 = ink).

    Jitter, drawn from ``rng``: font (uniform over ``fonts``), font size 55-80 % of the image
    side, stroke widened by 0-2 px at the supersampled scale, rotation in [-15, 15] degrees,
    shift of up to 1/8 of the image in each direction.
    """
    fonts = font_paths() if fonts is None else fonts
    canvas = size * _SUPERSAMPLE
    font = _font(fonts[rng.integers(len(fonts))], int(canvas * rng.uniform(0.55, 0.8)))
    stroke = int(rng.integers(0, 3))
    angle = rng.uniform(-15.0, 15.0)
    shift = rng.uniform(-canvas / 8, canvas / 8, size=2)

    image = Image.new("L", (canvas, canvas), 0)
    centre = (canvas / 2 + shift[0], canvas / 2 + shift[1])
    ImageDraw.Draw(image).text(centre, char, fill=255, font=font, anchor="mm", stroke_width=stroke)
    image = image.rotate(angle, resample=Image.BILINEAR)
    image = image.resize((size, size), resample=Image.BOX)
    return np.asarray(image, dtype=np.float32) / 255.0
