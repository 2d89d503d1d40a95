"""Tests for effects._srgb (the sRGB transfer curve): the chunked kernels against plain numpy."""
import sys

import numpy as np
import pytest

from effects._srgb import (linear_to_srgb, srgb_power, srgb_slope,
                           srgb_to_linear)

srgb_mod = sys.modules["effects._srgb"]


def _values(rng, shape):
    """Values over [-0.01, 1.01] with many on the linear toes (and exactly on their bounds)."""
    x = rng.uniform(-0.01, 1.01, shape).astype(np.float32)
    x.reshape(-1)[::3] *= np.float32(0.05)
    x.reshape(-1)[:4] = [0.0031308, 0.04045, 0.0, 1.0]
    return x


def _reference_power(linear):
    v = np.clip(linear.astype(np.float32), 0, 1)
    p = np.maximum(v, np.float32(0.0031308)).astype(np.float64) ** (1 / 2.4)
    return np.where(v < np.float32(0.0031308), (12.92 * v + 0.055) / 1.055, p)


@pytest.mark.parametrize("chunk", [7, 1 << 16])
def test_curve_matches_numpy_across_chunks_layouts_and_toes(rng, monkeypatch, chunk):
    """Each function equals the plain numpy formula (float64, to float32 rounding), whatever the
    chunking, on odd sizes, views of another layout and float64 input."""
    monkeypatch.setattr(srgb_mod, "_CHUNK", chunk)
    x = _values(rng, (13, 9, 3))
    for arr in (x, np.transpose(x, (1, 0, 2)), x.astype(np.float64), x[:, ::2]):
        v = np.clip(arr.astype(np.float32).astype(np.float64), 0, 1)
        enc = np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)
        np.testing.assert_allclose(linear_to_srgb(arr), enc, atol=2e-6)
        np.testing.assert_allclose(srgb_power(arr), _reference_power(arr), atol=2e-6)
        e = np.clip(arr.astype(np.float32), 0, 1)
        dec = np.where(e <= np.float32(0.04045), e / 12.92, ((e.astype(np.float64) + 0.055) / 1.055) ** 2.4)
        np.testing.assert_allclose(srgb_to_linear(e), dec, atol=2e-6)
        assert linear_to_srgb(arr).shape == arr.shape and srgb_power(arr).dtype == np.float32


def test_single_values_and_empty_arrays():
    for fn in (linear_to_srgb, srgb_to_linear, srgb_power):
        assert fn(np.zeros((0, 3), np.float32)).shape == (0, 3)
        assert fn(np.full((1, 1), 0.5, np.float32)).shape == (1, 1)
    np.testing.assert_allclose(srgb_power(np.float32(0.25)), 0.25 ** (1 / 2.4), rtol=1e-6)
    assert srgb_slope(np.array([0.0, 0.5], np.float32)).dtype == np.float32
