"""Row bands in parallel threads: every row once, errors surface, results identical to one thread."""
import threading

import cv2
import numpy as np
import pytest

import effects
from effects._bands import MIN_BAND_PIXELS, run_in_row_bands


@pytest.fixture
def opencv_threads():
    """Set cv2's thread count (which decides the number of bands) and restore it afterwards."""
    before = cv2.getNumThreads()
    yield cv2.setNumThreads
    cv2.setNumThreads(before)


def test_bands_cover_every_row_once_on_several_threads(opencv_threads):
    opencv_threads(4)
    H, W = 1000, MIN_BAND_PIXELS // 100  # room for 4 bands
    seen = np.zeros(H, int)
    bands = []
    lock = threading.Lock()

    def process(y0, y1):
        with lock:
            seen[y0:y1] += 1
            bands.append((y0, y1, threading.get_ident()))
        assert y0 % 32 == 0

    run_in_row_bands(process, H, W, align=32)
    assert (seen == 1).all()
    assert len(bands) == cv2.getNumThreads() > 1  # one band per thread OpenCV may use
    assert len({t for *_, t in bands}) > 1


def test_small_frames_stay_on_the_calling_thread(opencv_threads):
    opencv_threads(4)
    calls = []
    run_in_row_bands(lambda y0, y1: calls.append((y0, y1, threading.get_ident())), 100, 100)
    assert calls == [(0, 100, threading.get_ident())]


def test_an_error_in_any_band_is_raised(opencv_threads):
    opencv_threads(2)

    def process(y0, y1):
        if y0 > 0:
            raise ValueError("band failed")

    with pytest.raises(ValueError, match="band failed"):
        run_in_row_bands(process, 2000, MIN_BAND_PIXELS // 500)


@pytest.fixture(scope="module")
def scene():
    """1024×1280 linear RGB with a person, skin and sky: big enough for two bands."""
    rng = np.random.default_rng(3)
    H, W = 1024, 1280
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([0.2 + 0.5 * x / W, 0.3 + 0.4 * y / H, 0.5 - 0.3 * x / W], axis=2)
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1).astype(np.float32)
    person = (((x - 640) / 250) ** 2 + ((y - 620) / 380) ** 2 < 1).astype(np.float32)
    person = cv2.GaussianBlur(person, (0, 0), 3)
    skin = cv2.GaussianBlur((((x - 640) / 90) ** 2 + ((y - 400) / 120) ** 2 < 1).astype(np.float32), (0, 0), 3)
    sky = cv2.GaussianBlur((y < 250).astype(np.float32), (0, 0), 4) * (1 - person)
    return img, person, np.clip(skin, 0, 1), np.clip(sky, 0, 1)


@pytest.mark.parametrize("stage", ["style", "tone_map", "portrait_blur", "denoise", "sharpen"])
def test_parallel_bands_give_the_one_thread_result(opencv_threads, scene, stage):
    img, person, skin, sky = scene
    run = {
        "style": lambda: effects.apply_style(img, "vibrant", skin_mask=skin, sky_mask=sky),
        "tone_map": lambda: effects.tone_map_people(img, [person], skin_masks=skin, sky_mask=sky),
        "portrait_blur": lambda: effects.portrait_blur(img, person),
        "denoise": lambda: effects.denoise(img, sky_mask=sky, skin_mask=skin),
        "sharpen": lambda: effects.sharpen(img, sky_mask=sky, skin_mask=skin),
    }[stage]
    opencv_threads(1)
    one = run()
    opencv_threads(2)
    two = run()
    # identical up to OpenCV's own threading of a few reductions
    np.testing.assert_allclose(two, one, atol=1e-5)
