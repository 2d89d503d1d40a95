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


def _run(code, tmp_path, **env):
    import os

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), **env)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env)


_SHARPEN = ("import numpy as np, effects\n"
            "rng = np.random.default_rng(0)\n"
            "out = effects.sharpen(rng.random((19, 23, 3), dtype=np.float32))\n"
            "print(float(out.sum()))\n")


def test_a_damaged_cache_file_is_compiled_again_not_a_failure_of_every_run(tmp_path):
    """A cut-short cache file (a disk fault) made every later run fail with an UnpicklingError
    until someone deleted it by hand; now it reads as a miss, and the kernel is compiled again."""
    first = _run(_SHARPEN, tmp_path)
    assert first.returncode == 0, first.stderr
    files = list((tmp_path / "cache").rglob("*.nb[ic]"))
    assert files
    for f in files:
        f.write_bytes(f.read_bytes()[:100])
    again = _run(_SHARPEN, tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout


def test_a_cache_that_cannot_be_written_is_skipped_with_a_warning(tmp_path):
    """A full disk under the cache (or a quota) failed every photo with "No space left on
    device"; the kernels now stay compiled for the process, and the user is told."""
    code = ("import errno, warnings\n"
            "from numba.core import caching\n"
            "def full(self, *args): raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "caching.IndexDataCacheFile.save = full\n"
            "warnings.simplefilter('always')\n" + _SHARPEN)
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("could not be saved") == 1 and "No space left" in done.stderr, done.stderr


def test_cache_entries_are_keyed_on_the_shared_helpers_and_the_cpu(tmp_path):
    """Numba keys a kernel's cache on its own file: a kernel kept stale machine code when only a
    helper it inlines from effects._jit changed. Entries now carry a digest of that file; and
    the compile notice counts only entries made for this CPU (a cache built elsewhere, e.g. in
    a container image, compiles again)."""
    code = (_SHARPEN + "import sys, effects._jit as jit\n"
            "k = sys.modules['effects.sharpen']._luma_rows\n"
            "keys = list(k._cache._cache_file._load_index())\n"
            "assert keys and all(key[-1] == jit._HELPERS_DIGEST for key in keys), keys\n"
            "print(jit.cached_kernel_share(['effects.sharpen']))\n")
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) > 0.5
    elsewhere = _run("import effects, effects._jit as jit\nprint(jit.cached_kernel_share(['effects.sharpen']))\n",
                     tmp_path, NUMBA_CPU_NAME="generic")
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert float(elsewhere.stdout.split()[-1]) == 0.0


def test_with_numbas_debugging_switch_the_kernels_run_as_python(tmp_path):
    """NUMBA_DISABLE_JIT=1 (kernels run as plain Python, for a debugger) failed every develop:
    the fused multiply-add and the bit casts are LLVM intrinsics, which Python cannot run. They
    now have Python stand-ins under that switch."""
    code = ("import numpy as np, camseg\n"
            "rng = np.random.default_rng(1)\n"
            "img = rng.random((16, 20, 3), dtype=np.float32)\n"
            "out = camseg.develop(img, style='vibrant')\n"
            "assert out.shape == img.shape and np.isfinite(out).all()\n"
            "print('ok')\n")
    done = _run(code, tmp_path, NUMBA_DISABLE_JIT="1")
    assert done.stdout.strip() == "ok", done.stdout + done.stderr
