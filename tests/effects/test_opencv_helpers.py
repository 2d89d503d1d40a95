"""effects/_opencv.py: OpenCV stand-ins for numpy calls, against numpy."""
import numpy as np
import pytest

from effects._opencv import clip01, image_view


@pytest.mark.parametrize("shape", [(5,), (5, 1), (1, 5), (4, 3), (4, 1, 1), (3, 4, 3), (2, 1, 3)])
def test_clip01_equals_np_clip_on_every_shape(shape):
    # A single column beside a number is read by OpenCV as a vector: the view never is one.
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 2.0, shape).astype(np.float32)
    expected = np.clip(x, 0.0, 1.0)
    np.testing.assert_array_equal(clip01(x.copy()), expected)
    dst = np.empty_like(x)
    assert clip01(x, dst) is dst
    np.testing.assert_array_equal(dst, expected)
    view = image_view(x)
    assert view.ndim == 2 and (view.shape[1] > 1 or x.size == 1) and np.shares_memory(view, x)
