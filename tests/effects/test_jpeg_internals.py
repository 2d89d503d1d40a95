"""The fast paths of the JPEG skin step (effects/_jpeg.py) against their plain definitions."""
import cv2
import numpy as np
import pytest
from scipy.special import ndtr

from effects._bands import column_runs
from effects._jpeg import (_DCT8, _DEBLOCK, _JFIF_AFFINE, _RUN_GAP, _SKIN_BLOCK, _estimate_write_run,
                           _fine_bin_mean, _linear_from_power, _luma_coefficients, _quantised_bin_mean, _row_runs,
                           _second_moment_table, _srgb_power_value, _total_variance, _variance_table, block_dct,
                           jfif_luma)
from effects._srgb import srgb_power


def _linear_from_power_reference(p):
    """The linear light of ``sRGB = 1.055 p - 0.055`` clipped to [0, 1] (IEC 61966-2-1
    decoding), in float64."""
    srgb = np.clip(1.055 * np.asarray(p, np.float64) - 0.055, 0.0, 1.0)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _block_idct(coefs):
    """Inverse of :func:`effects._jpeg.block_dct`: (h, 8, w, 8) → float32 (8h)×(8w)."""
    bh, _, bw, _ = coefs.shape
    along_y = np.matmul(_DCT8.T, coefs.reshape(bh, 8, bw * 8))
    return (along_y.reshape(-1, 8) @ _DCT8).reshape(bh * 8, bw * 8)


def _estimate_blocks(coefs, mean_k2, noise_var, steps, n_fine):
    """The estimate kernel's posterior of every AC coefficient of frequency-major planes
    (float32 (64, n) coefficients, (63, n) ``mean_k2``, (n,) noise variances, (64,) steps; the
    first ``n_fine`` frequencies fine-binned), one value at a time through the helpers the
    kernel inlines. float32 (63, n)."""
    lo, table = _variance_table()
    est = np.empty((63, coefs.shape[1]), np.float32)
    for f in range(63):
        posterior = _fine_bin_mean if f < n_fine else _quantised_bin_mean
        for j in range(coefs.shape[1]):
            est[f, j] = posterior(coefs[f, j], mean_k2[f, j], noise_var[j], steps[f], table, lo)
    return est


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
    in float64."""
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
def test_posterior_helpers_match_the_dense_posterior(noise):
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
    got = _estimate_blocks(coefs, mean_k2, noise_var, steps, n_fine)
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


def test_kernel_srgb_curve_is_the_numpy_one():
    """The kernels' sRGB power and its inverse (polynomial log and exp, branch-free) give
    effects._srgb's power and the IEC decoding to float32 rounding, toes, clips and
    out-of-range values included (an adjusted ``p`` beyond the curve's ends decodes to [0, 1];
    on the toe, linearly), and undo each other."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-0.1, 1.2, 3000), rng.uniform(0.0, 0.005, 1000),
                        [0.0, 0.0031308, np.nextafter(0.0031308, 0), 1.0, 1.5, -1.0]]).astype(np.float32)
    got = np.array([_srgb_power_value(v) for v in x], np.float32)
    np.testing.assert_allclose(got, srgb_power(x), rtol=0, atol=3e-7)
    p = np.concatenate([srgb_power(x), rng.uniform(-0.2, 1.3, 1000),
                        [-0.2, 0.0, 0.03, 0.0528, 0.5, 1.0, 1.3]]).astype(np.float32)
    got = np.array([_linear_from_power(v) for v in p], np.float32)
    np.testing.assert_allclose(got, _linear_from_power_reference(p), rtol=0, atol=3e-7)
    np.testing.assert_allclose(got[:x.size], np.clip(x, 0.0, 1.0), rtol=0, atol=1e-6)


def test_luma_coefficients_kernel_is_block_dct_of_jfif_luma():
    """The transform kernel's coefficients (planes in the estimate's order) and skin-weighted
    k^2, on runs of an odd-sized frame off its top-left pixel, against block_dct(jfif_luma())."""
    rng = np.random.default_rng(4)
    image = rng.uniform(-0.05, 1.1, (8 * 7 + 3, 8 * 11 + 5, 3)).astype(np.float32)
    image[::5] *= 0.002  # plenty of linear toe
    y0, x0, bh, bw = 3, 5, 6, 10
    order = np.r_[np.arange(1, 64)[::-1], 0]
    steps = rng.integers(1, 12, 64).astype(np.float32)
    weight = rng.random((bh, bw)).astype(np.float32)
    runs = np.array([(0, 0, 10), (2, 3, 4), (5, 1, 9)], np.int64)
    coefs, k2w = np.zeros((64, bh, bw), np.float32), np.zeros((63, bh, bw), np.float32)
    _luma_coefficients(image, y0, x0, runs, order, steps, weight, coefs, k2w)
    ref = block_dct(jfif_luma(image[y0:y0 + 8 * bh, x0:x0 + 8 * bw])).transpose(1, 3, 0, 2).reshape(64, bh, bw)[order]
    ran = np.zeros((bh, bw), bool)
    for i, a, b in runs:
        ran[i, a:b] = True
    np.testing.assert_allclose(coefs[:, ran], ref[:, ran], rtol=0, atol=2e-3)  # (0-2040 scale)
    assert not coefs[:, ~ran].any()
    k = np.round(coefs[:63] / steps[:63, None, None])
    np.testing.assert_array_equal(k2w, k * k * (weight * ran))


def _deblock_reference(p1, p0, q0, q1, clip):
    """The weak deblocking step, as numpy computed it."""
    return np.clip((9.0 * (q0 - p0) - 3.0 * (q1 - p1)) * np.float32(1 / 16), -clip, clip)


@pytest.mark.parametrize("t0, t1", [(1, 4), (0, 6), (0, 3), (4, 6)])
def test_estimate_write_kernel_is_the_numpy_chain(t0, t1):
    """One run of blocks of a strip through the estimate-and-write kernel against the numpy
    chain it replaced (_estimate_blocks, block means, _block_idct, deblocking by slices over the
    strip and the block row beside it on each side, the blend in units of sRGB power), on an
    odd-sized frame with the grid off its top-left pixel, blocks left to the pyramid, a run
    that does not span the region, and strips with and without rows of the region beside
    them: those halo rows are read from the copies given, not from the frame (which another
    strip may be writing)."""
    rng = np.random.default_rng(5)
    oy, ox, bh, bw = 2, 3, 6, 9  # grid origin in the frame; region = whole grid, b0 = c0 = 0
    e0, e1 = 1, 8
    out = rng.uniform(0.0, 1.0, (8 * bh + 5, 8 * bw + 6, 3)).astype(np.float32) ** 2
    n_fine = 40
    steps = np.r_[np.ones(n_fine), rng.integers(3, 12, 63 - n_fine), 8].astype(np.float32)
    order = np.r_[rng.permutation(np.arange(1, 64)), 0]
    coefs = (rng.standard_normal((64, bh, bw)) * 6 * steps[:, None, None]).astype(np.float32)
    coefs[n_fine:63] = np.round(coefs[n_fine:63] / steps[n_fine:63, None, None]) * steps[n_fine:63, None, None]
    sum_w = rng.uniform(0.2, 20.0, (bh, bw)).astype(np.float32)
    sum_k2 = (rng.uniform(0.0, 60.0, (63, bh, bw)) * sum_w).astype(np.float32)
    noise = rng.uniform(2.0, 40.0, (bh, bw)).astype(np.float32)
    limit = np.sqrt(noise) * np.float32(_DEBLOCK)
    processed = rng.random((bh, bw)) > 0.25
    window = rng.uniform(-0.2, 1.3, (8 * (t1 - t0), 8 * (e1 - e0))).astype(np.float32)
    lo, table = _variance_table()
    edge = lambda t: out[oy + 8 * t:oy + 8 * t + 8, ox:ox + 8 * bw].copy()
    none = np.empty((0, 0, 3), np.float32)
    above, below = edge(t0 - 1) if t0 > 0 else none, edge(t1) if t1 < bh else none
    written = out.copy()
    if t0 > 0:
        written[oy + 8 * t0 - 8:oy + 8 * t0] = 7.0  # the halo rows as another strip may have left them
    written[oy + 8 * t1:oy + 8 * t1 + 8] = 7.0
    before = written.copy()
    _estimate_write_run(written, above, below, oy, ox, t0, t1, e0, e1, 0, bh, 0, coefs, sum_k2, sum_w, noise,
                        processed, limit, steps, order, n_fine, table, lo, window, False)

    # The numpy chain, on the strip's block rows and its halo, [h0, h1).
    h0, h1 = max(0, t0 - 1), min(bh, t1 + 1)
    ys, xs = slice(oy + 8 * h0, oy + 8 * h1), slice(ox + 8 * e0, ox + 8 * e1)
    shape = (h1 - h0, e1 - e0)
    p = srgb_power(out[ys, xs])
    y_old = cv2.transform(p, _JFIF_AFFINE).reshape(p.shape[:2])
    n = shape[0] * shape[1]
    est = np.empty((64, n), np.float32)
    est[:63] = _estimate_blocks(coefs[:, h0:h1, e0:e1].reshape(64, n),
                           (sum_k2[:, h0:h1, e0:e1] / sum_w[h0:h1, e0:e1]).reshape(63, n),
                           noise[h0:h1, e0:e1].reshape(n), steps, n_fine)
    est[63] = cv2.resize(y_old, shape[::-1], interpolation=cv2.INTER_AREA).reshape(n) * np.float32(8.0)
    blocks = np.empty((shape[0], 8, shape[1], 8), np.float32)
    fu, fv = np.divmod(order, 8)
    blocks[:, fu, :, fv] = est.reshape(64, *shape)
    y_new = _block_idct(blocks)
    keep = processed[h0:h1, e0:e1]
    drop = np.repeat(np.repeat(~keep, 8, axis=0), 8, axis=1)
    y_new[drop] = y_old[drop]
    clip = np.repeat(np.where(keep[:, :-1] & keep[:, 1:], np.minimum(limit[h0:h1, e0:e1 - 1], limit[h0:h1, e0 + 1:e1]),
                              np.float32(0.0)), 8, axis=0)
    step = _deblock_reference(y_new[:, 6:-2:8], y_new[:, 7:-1:8], y_new[:, 8::8], y_new[:, 9::8], clip)
    y_new[:, 7:-1:8] += step
    y_new[:, 8::8] -= step
    delta = y_new - y_old
    for j in range(max(t0, 1), min(t1, bh - 1) + 1):  # horizontal boundaries, rows 8j - 1 | 8j
        both = processed[j - 1, e0:e1] & processed[j, e0:e1]
        c = np.repeat(np.where(both, np.minimum(limit[j - 1, e0:e1], limit[j, e0:e1]), np.float32(0.0)), 8)
        rows = y_new[8 * (j - h0) - 2:8 * (j - h0) + 2]
        s = _deblock_reference(rows[0], rows[1], rows[2], rows[3], c)
        delta[8 * (j - h0) - 1] += s
        delta[8 * (j - h0)] -= s
    strip = slice(8 * (t0 - h0), 8 * (t1 - h0))  # the rows written: the strip's own
    delta, p, drop = delta[strip], p[strip], drop[strip]
    w = np.clip((window - np.float32(_SKIN_BLOCK)) * np.float32(1 / (1 - _SKIN_BLOCK)), 0.0, 1.0) * ~drop
    delta *= w
    delta *= np.float32(1 / (255 * 1.055))
    ys = slice(oy + 8 * t0, oy + 8 * t1)
    expected = before.copy()
    blended = _linear_from_power_reference(p + delta[..., None]).astype(np.float32)
    expected[ys, xs] = np.where((w > 0)[..., None], blended, out[ys, xs])
    # (The chain's _block_idct is BLAS's float32 products in another order: ~1e-3 of a level.)
    np.testing.assert_allclose(written, expected, rtol=0, atol=2e-5)
    assert np.abs(written - expected).mean() < 1e-7
    assert (written[ys, xs] != out[ys, xs]).any(axis=2).sum() > 0.5 * (w > 0).sum()
    outside = np.ones(out.shape[:2], bool)
    outside[ys, xs] = False
    np.testing.assert_array_equal(written[outside], before[outside])
