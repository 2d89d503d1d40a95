"""Start-up cost: what importing camseg pulls in (every `camseg` command and batch worker pays it)."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_importing_the_pipeline_leaves_colour_science_and_scipy_for_later():
    # colour-science (0.3-0.7 s with scipy and matplotlib) is needed only by non-identity
    # styles, scipy.special only by the JPEG skin step: both are imported on first use.
    code = ("import sys, camseg, camseg.batch, camseg.cli, camseg.segmenter, effects; "
            "print(sorted(m for m in ('colour', 'scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
