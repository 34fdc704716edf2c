"""The seeded glyph renderer."""

import numpy as np

from bap_tf.data import glyphs


def test_fonts_ship_with_matplotlib():
    assert len(glyphs.font_paths()) == len(glyphs.FONT_FILES)


def test_render_is_a_seeded_coverage_mask():
    first = glyphs.render("A", np.random.default_rng(0), size=32)
    again = glyphs.render("A", np.random.default_rng(0), size=32)
    other = glyphs.render("A", np.random.default_rng(1), size=32)
    assert first.shape == (32, 32) and first.dtype == np.float32
    assert 0.0 <= first.min() and first.max() <= 1.0
    # Some ink, mostly background.
    assert first.max() > 0.9 and 0.02 < first.mean() < 0.5
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_different_characters_render_differently():
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    assert np.abs(glyphs.render("I", rng_a) - glyphs.render("W", rng_b)).sum() > 20
