"""Shared argument checks: masks are validated without a copy, yet never writable by the effects."""
import numpy as np
import pytest

from effects._validate import check_mask


def test_float32_mask_is_a_read_only_view_not_a_copy():
    mask = np.random.default_rng(0).random((8, 10), dtype=np.float32)
    m = check_mask(mask, "sky_mask", (8, 10))
    assert np.shares_memory(m, mask) and not m.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        m[0, 0] = 1.0
    assert mask.flags.writeable  # the caller's own array is untouched, flags included


def test_other_masks_become_new_contiguous_float32_arrays():
    stack = np.random.default_rng(1).random((8, 10, 2), dtype=np.float32)
    m = check_mask(stack[:, :, 1], "skin_mask", (8, 10))  # a strided view
    assert m.flags.c_contiguous and m.dtype == np.float32 and not np.shares_memory(m, stack)
    np.testing.assert_array_equal(m, stack[:, :, 1])
    b = check_mask(np.eye(8, 10, dtype=bool), "skin_mask", (8, 10))
    assert b.dtype == np.float32 and b.max() == 1.0


def test_rounding_overshoot_is_clipped_into_a_new_array():
    mask = np.full((4, 4), 1.0 + 5e-6, np.float32)
    m = check_mask(mask, "sky_mask", (4, 4))
    assert m.max() == 1.0 and mask.max() > 1.0 and not np.shares_memory(m, mask)
    with pytest.raises(ValueError, match="sky_mask: expected values in"):
        check_mask(np.full((4, 4), 1.5, np.float32), "sky_mask", (4, 4))


def test_returned_range_matches_numpy_and_still_rejects_nan_and_inf():
    from effects._validate import check_image

    img = np.random.default_rng(2).random((700, 900, 3), dtype=np.float32)  # several chunks and bands
    img[650, 10, 2] = 1.5
    img[3, 800, 0] = -0.25
    out, lo, hi = check_image(img, return_range=True)
    assert out is img and (lo, hi) == (-0.25, 1.5)
    for bad in (np.nan, np.inf, -np.inf):
        img2 = img.copy()
        img2[699, 899, 1] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            check_image(img2, return_range=True)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_image(img, check_range=True, return_range=True)


def test_vouched_ranges_skip_the_scan_only_for_that_object_inside_the_block():
    from effects import _validate as v

    img = np.random.default_rng(4).random((300, 200, 3), dtype=np.float32)
    matte = np.random.default_rng(5).random((300, 200), dtype=np.float32)
    scans = []
    real = v.min_max

    def counted(a, **kw):
        scans.append(a.shape)
        return real(a, **kw)

    v.min_max = counted
    try:
        with v.vouched_ranges():
            v.vouch(img, 0.25, 0.75)  # (a range the scan would not find: shows it is used)
            v.vouch(matte, float(matte.min()), float(matte.max()))
            assert v.check_image(img, return_range=True)[1:] == (0.25, 0.75)
            m = v.check_mask(matte, "sky_mask", (300, 200))
            assert not m.flags.writeable and np.shares_memory(m, matte)
            assert scans == []
            v.check_image(img.copy(), return_range=True)  # another object: scanned
            v.vouch(matte[:, :1], np.nan, 1.0)  # a NaN range is not recorded
            assert len(scans) == 1
        lo, hi = v.check_image(img, return_range=True)[1:]  # outside the block: scanned
        assert (lo, hi) == (float(img.min()), float(img.max())) and len(scans) == 2
        v.vouch(img, 0.0, 1.0)  # outside a block: nothing recorded
        v.check_image(img, check_range=True)
        assert len(scans) == 3
    finally:
        v.min_max = real


def test_clip_unit_in_place_equals_np_clip_and_its_range_on_odd_sizes():
    from effects._validate import clip_unit_in_place

    rng = np.random.default_rng(6)
    for shape in ((1, 1, 3), (257, 131, 3), (701, 903, 3), (333, 77)):
        x = rng.random(shape, dtype=np.float32) * 1.1 - 0.05
        for case in ("mixed", "inside", "nan"):
            y = np.clip(x, 0.0, 1.0) if case == "inside" else x.copy()
            if case == "nan":
                y.flat[y.size // 2] = np.nan
            expected = np.clip(y, 0.0, 1.0)
            lo, hi = clip_unit_in_place(y)
            np.testing.assert_array_equal(y, expected)
            if case == "nan":
                assert np.isnan(lo) and np.isnan(hi)
            else:
                assert (lo, hi) == (float(expected.min()), float(expected.max()))


def test_vouched_memo_computes_once_per_vouched_array_and_key():
    from effects._validate import vouch, vouched_memo, vouched_ranges

    a, b = np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), np.float32)
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    assert vouched_memo(a, "k", compute) == 1 and vouched_memo(a, "k", compute) == 2  # no block
    with vouched_ranges():
        vouch(a, 0.0, 0.0)
        assert vouched_memo(a, "k", compute) == 3 and vouched_memo(a, "k", compute) == 3
        assert vouched_memo(a, "other", compute) == 4
        assert vouched_memo(b, "k", compute) == 5 and vouched_memo(b, "k", compute) == 6  # not vouched
    assert vouched_memo(a, "k", compute) == 7


def test_a_vouched_array_is_held_weakly_and_its_record_dies_with_it():
    import gc
    import weakref

    from effects._validate import _vouched_range, vouch, vouched_ranges

    with vouched_ranges():
        a = np.zeros((8, 8, 3), np.float32)
        vouch(a, 0.0, 0.0)
        alive = weakref.ref(a)
        del a
        gc.collect()
        assert alive() is None  # not kept for the rest of the block
        b = np.zeros((8, 8, 3), np.float32)  # (may take the freed array's id)
        assert _vouched_range(b) is None
