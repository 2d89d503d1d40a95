"""Start-up cost: what importing camseg pulls in (every `camseg` command and batch worker pays it)."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_importing_the_pipeline_leaves_colour_science_and_scipy_special_for_later():
    # scipy.special (~0.2 s) is needed only by the JPEG skin step: imported on first use.
    # (Numba, which the effects' kernels need, imports scipy's top level itself: ~20 ms.)
    # colour-science (0.8-1 s with scipy, and matplotlib when installed) not at all at run
    # time, not even by a styled photo: the styles hold its Oklab constants.
    code = ("import sys, camseg, camseg.batch, camseg.cli, camseg.segmenter, effects; "
            "import numpy as np; from effects.styles import STYLE_PRESETS, apply_style; "
            "apply_style(np.full((16, 16, 3), 0.3, np.float32), STYLE_PRESETS['vibrant']); "
            "print(sorted(m for m in ('colour', 'scipy.special', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_camseg_develop_stays_the_function_whatever_is_imported_first():
    """The pipeline module was camseg/develop.py: importing it (or anything that did, such as
    camseg.batch, or reading camseg.DevelopSettings first) bound the package attribute
    ``camseg.develop`` to the module, and ``camseg.develop(photo)`` raised "'module' object is
    not callable"."""
    code = ("import camseg, camseg.batch, camseg.cli; from camseg.pipeline import DevelopSettings; "
            "s = camseg.DevelopSettings(style='warm'); from camseg import develop; "
            "assert callable(camseg.develop) and develop is camseg.develop, camseg.develop; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stdout + out.stderr
