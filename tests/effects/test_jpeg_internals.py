"""The fast paths of the JPEG skin step (effects/_jpeg.py) against their plain definitions."""
import numpy as np
import pytest
from scipy.special import ndtr

from effects._bands import column_runs
from effects._jpeg import (_RUN_GAP, _estimate_blocks, _row_runs, _second_moment_table,
                           _total_variance)
from effects._srgb import srgb_power, srgb_power_to_linear_in_place


def test_total_variance_inverts_the_quantised_second_moment():
    """The bit-pattern table gives the t^2 whose E[round(x / Q)^2] is m, to 0.1 %."""
    m2, t = _second_moment_table()
    m = np.geomspace(1e-6, 1e6, 20001).astype(np.float32)
    exact = np.where(m > 3000, m.astype(np.float64) - 1 / 12, np.interp(m, m2, t) ** 2)
    exact = np.where(m < 1e-7, np.interp(1e-7, m2, t) ** 2, exact)
    got = _total_variance(m, np.float32(1.0))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, exact, rtol=1e-3)
    np.testing.assert_allclose(_total_variance(m, np.float32(3.0)), 9 * got, rtol=1e-6)
    # Zero and a box filter's tiny negative rounding count as the smallest value.
    smallest = _total_variance(np.array([1e-7], np.float32), np.float32(1.0))[0]
    assert np.all(_total_variance(np.array([0.0, -1e-9], np.float32), np.float32(1.0)) == smallest)


def test_srgb_power_and_its_inverse_on_crops():
    """srgb_power (taken by the JPEG step on strided crops of a frame) against the IEC formula
    in float64, and srgb_power_to_linear_in_place undoing it."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.01, 1.2, (40, 56, 3)).astype(np.float32)
    x[::3] *= 0.002  # plenty of linear toe
    frame = np.zeros((60, 80, 3), np.float32)
    frame[7:47, 13:69] = x
    # Also a lone value and single columns: OpenCV reads an N×1 array beside a number as a
    # vector, and [1.5] came out 1.18 (not clipped) when the clips moved to OpenCV.
    odd = [np.array(v, np.float32) for v in ([1.5], [-0.5], [[0.2]], [[0.001], [0.7], [1.3], [0.0]],
                                             [[[0.3], [2e-4]], [[0.9], [-1.0]]])]
    for view in (x, frame[7:47, 13:69], np.full((8, 8, 3), 0.5, np.float32), *odd):
        got = srgb_power(view)
        assert got.flags.c_contiguous and got.dtype == np.float32 and got.shape == view.shape
        lin = np.clip(view.astype(np.float64), 0.0, 1.0)
        expected = np.where(lin < 0.0031308, (12.92 * lin + 0.055) / 1.055, lin ** (1 / 2.4))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        back = srgb_power_to_linear_in_place(got.copy())
        np.testing.assert_allclose(back, lin, rtol=0, atol=1e-6)


def test_row_runs_are_each_rows_column_runs():
    rng = np.random.default_rng(1)
    blocks = rng.random((30, 90)) > 0.85
    blocks[5] = False
    got = _row_runs(blocks, 2, 25, 4, 80)
    want = [(i, 4 + a, 4 + b) for i in range(2, 25) for a, b in column_runs(blocks[i:i + 1, 4:80], _RUN_GAP)]
    assert got == want and len(got) > 20
    # Each row's runs lie inside the runs of the rows together (the strips' runs).
    union = column_runs(blocks[2:25, 4:80], _RUN_GAP)
    assert all(any(s + 4 <= a and b <= e + 4 for s, e in union) for _, a, b in got)
    assert column_runs(np.zeros((3, 5), bool), _RUN_GAP) == [] and _row_runs(blocks, 5, 6, 0, 90) == []


def _posterior_reference(coefs, steps, signal_var, noise_var):
    """E[c | x in its bin], computed densely on every coefficient (the plain definition)."""
    tau2 = signal_var + noise_var
    gain = signal_var / np.maximum(tau2, 1e-12)
    k = np.round(coefs / steps)
    coarse = (steps >= 3) & (steps * steps >= 0.0025 * tau2)
    x = np.where(coarse, 0.0, coefs.astype(np.float64))
    sel = coarse & (k != 0)
    tau = np.sqrt(tau2[sel])
    a, b = (k[sel] - 0.5) * steps[sel] / tau, (k[sel] + 0.5) * steps[sel] / tau
    mass = ndtr(b) - ndtr(a)
    mean = tau * (np.exp(-0.5 * a * a) - np.exp(-0.5 * b * b)) / (np.sqrt(2 * np.pi) * np.maximum(mass, 1e-300))
    x[sel] = np.where(mass > 1e-9, mean, k[sel] * steps[sel])
    return gain * x


@pytest.mark.parametrize("noise", [4.0, 5000.0])
def test_estimate_blocks_matches_the_dense_posterior(noise):
    """Only surviving (and fine-binned) coefficients get the posterior maths; every other one
    must come out as the dense definition says, including bins made fine by a wide prior or
    by the noise alone."""
    rng = np.random.default_rng(2)
    n, n_fine = 500, 20
    steps = np.concatenate([np.ones(n_fine), rng.integers(3, 12, 63 - n_fine), [8]]).astype(np.float32)
    spread = np.exp(rng.uniform(np.log(0.2), np.log(80.0), (64, 1)))  # some priors far wider than 20 Q
    coefs = (rng.standard_normal((64, n)) * spread * steps[:, None] / 4).astype(np.float32)
    # Decoded: on multiples of the step, give or take the 8-bit rounding of the pixels.
    coefs[n_fine:63] = np.round(coefs[n_fine:63] / steps[n_fine:63, None]) * steps[n_fine:63, None]
    coefs += rng.uniform(-0.4, 0.4, coefs.shape).astype(np.float32)
    mean_k2 = (np.round(coefs[:63] / steps[:63, None]) ** 2).astype(np.float32)
    mean_k2 = np.repeat(mean_k2.mean(axis=1, keepdims=True), n, axis=1)
    mean_k2 *= rng.uniform(0.5, 2.0, (63, n)).astype(np.float32)
    noise_var = (noise * rng.uniform(0.5, 1.5, n)).astype(np.float32)
    got = _estimate_blocks(coefs, mean_k2, noise_var, steps, n_fine)[:63]
    tau2 = _total_variance(mean_k2, steps[:63, None]).astype(np.float64)
    signal = np.maximum(tau2 - noise_var, 0.0)
    q = np.broadcast_to(steps[:63, None], (63, n)).astype(np.float64)
    sigma2 = np.broadcast_to(noise_var, (63, n)).astype(np.float64)
    want = _posterior_reference(coefs[:63].astype(np.float64), q, signal, sigma2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    assert np.count_nonzero(got[n_fine:]) > 0


def test_jpeg_step_on_any_memory_layout(rng):
    """A caller's Fortran-ordered or transposed frame (the denoiser's output keeps its layout)
    gives the contiguous frame's result: OpenCV writes only into row-major views."""
    from effects import denoise
    from test_jpeg_skin import _jpeg, _noisy, _skin_scene  # pytest puts this folder on sys.path
    clean = _skin_scene(96, 120)
    noisy, _ = _jpeg(_noisy(clean, 3200, rng))
    skin = np.ones(clean.shape[:2], np.float32)
    whole = denoise(noisy, skin_mask=skin)
    for view in (np.asfortranarray(noisy), np.ascontiguousarray(noisy.transpose(1, 0, 2)).transpose(1, 0, 2)):
        np.testing.assert_array_equal(denoise(view, skin_mask=skin), whole)
