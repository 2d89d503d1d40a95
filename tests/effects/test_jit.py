"""effects._jit: the kernels' decorator, where no folder can hold Numba's cache."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_without_a_writable_cache_folder_the_kernels_compile_uncached_with_one_warning():
    """A read-only installation whose home folder is read-only too (a locked-down container):
    Numba finds no folder for its cache, and ``cache=True`` raised at import ("cannot cache
    function ...: no locator available"), so ``import effects`` failed. Now the kernels are
    compiled per process, and the user is told once how to keep them."""
    code = (
        "import warnings, numpy as np\n"
        "from numba.core import caching\n"
        "def refuse(self): raise PermissionError(13, 'read-only', self.get_cache_path())\n"
        "caching._CacheLocator.ensure_cache_path = refuse  # no folder anywhere can be written\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    import effects\n"
        "    out = effects.sharpen(np.full((9, 11, 3), 0.5, np.float32))\n"
        "said = [str(w.message) for w in seen if 'cannot be cached' in str(w.message)]\n"
        "assert len(said) == 1 and 'NUMBA_CACHE_DIR' in said[0], said\n"
        "assert out.shape == (9, 11, 3) and np.allclose(out, 0.5, atol=1e-6)\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stdout + done.stderr
