"""The ``camseg`` command line.

::

    camseg develop photos/ --out developed/ --style vibrant --portrait blur --jobs 2
    camseg segment photo.jpg --out masks/

Exit status: 0 when every photo was processed (or was already finished),
1 when any photo failed (each failure is listed on stderr), 2 for a usage
error, 130 when interrupted (143 after SIGTERM). Runs are resumable: run the same command again
after an interruption and finished photos are skipped.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is (exit status 143, 128 + 15, where Ctrl-C's is 130)."""


def _interrupt(signum, frame):
    raise _Terminated


def _end_on_signals(sigint_status: int, sigterm_status: int) -> None:
    """From now on Ctrl-C and SIGTERM end the command at once with these exit statuses (what is
    left is printing and the interpreter's exit, where they printed tracebacks)."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(sigint_status))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(sigterm_status))


def _f_number(text):
    """``--f-number``: a finite number above 0 (its error named PortraitBlurParams.f_number)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected an aperture above 0, e.g. 1.4 or 2.8, got {text!r}")
    return value


def _output_folder(text):
    if not text.strip():
        # (--out "$DEST" with DEST unset wrote the outputs into the current folder)
        raise argparse.ArgumentTypeError("the output folder is empty; name a folder")
    return Path(text)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    from camseg import __version__

    parser = argparse.ArgumentParser(
        prog="camseg",
        description="Segmentation-driven camera pipeline: develop or segment folders of photos.")
    parser.add_argument("--version", action="version", version=f"camseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(p):
        p.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="photo files (JPEG, PNG, TIFF; 8 or 16 bit) and/or folders (searched recursively)")
        p.add_argument("--out", required=True, type=_output_folder, metavar="DIR",
                       help="output folder (created; input files are never overwritten)")
        p.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N",
                       help="worker processes, one model load each (default: number of CPU cores)")
        p.add_argument("--overwrite", action="store_true",
                       help="redo photos whose output exists (default: skip them, so runs resume)")
        p.add_argument("--model", type=Path, default=None, metavar="PATH",
                       help="ONNX segmentation model (default: the bundled one)")
        p.add_argument("--dask", default=None, metavar="SCHEDULER",
                       help="run on Dask: a scheduler address (tcp://host:8786) or 'local' for a local "
                            "cluster of --jobs workers; needs pip install 'camseg[dask]' and, on a real "
                            "cluster, the same paths on every worker")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("--quiet", "-q", action="store_true",
                       help="print only failures and warnings (no progress bar, notes or summary)")

    dev = sub.add_parser("develop", help="run the whole pipeline on photos",
                         description="Segment each photo once, then denoise and sharpen (sky/skin aware), "
                                     "tone-map each person, apply a Photographic Style and an optional "
                                     "portrait effect. EXIF and colour profile are kept.",
                         formatter_class=_HelpWithNames)
    common(dev)
    dev.add_argument("--style", default=None, help="Photographic Style preset: {styles} (default: standard)")
    dev.add_argument("--style-strength", type=float, default=None, metavar="X", help="0..2 (default 1)")
    dev.add_argument("--portrait", default=None, help="portrait effect: {portrait_effects} (default: none)")
    dev.add_argument("--f-number", type=_f_number, default=None, metavar="F",
                     help="aperture of the simulated lens for --portrait blur (smaller = more blur)")
    dev.add_argument("--iso", type=float, default=None, help="ISO for the noise model (default: from EXIF)")
    # On/off both ways: a --settings file that turns a stage off could not be overridden back on.
    dev.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=None,
                     help="sky/skin-aware denoising (on by default; --no-denoise skips it)")
    dev.add_argument("--sharpen", action=argparse.BooleanOptionalAction, default=None,
                     help="sharpening (on by default; --no-sharpen skips it)")
    dev.add_argument("--tone-map", action=argparse.BooleanOptionalAction, default=None,
                     help="per-person tone mapping (on by default; --no-tone-map skips it)")
    dev.add_argument("--settings", type=Path, default=None, metavar="JSON",
                     help="DevelopSettings JSON file (options given on the command line override it)")
    dev.add_argument("--save-settings", type=Path, default=None, metavar="JSON",
                     help="write the effective settings to this JSON file")
    dev.add_argument("--format", dest="output_format", choices=("jpg", "png", "tif"), default=None,
                     help="output file type (default: same as each input)")
    dev.add_argument("--quality", type=int, default=95,
                     help="JPEG quality 1..100 (default 95; PNG and TIFF are lossless and take none)")
    dev.add_argument("--bit-depth", type=int, choices=(8, 16), default=None,
                     help="output bits per channel for PNG/TIFF (default: the input's)")
    dev.add_argument("--list", action="store_true",
                     help="list the available styles and portrait effects and exit")

    seg = sub.add_parser("segment", help="write masks and an overlay preview per photo",
                         description="For each photo, write OUT/<name>/{sky,hair,skin,teeth,glasses,person}.png, "
                                     "person_NN.png per person, and overlay.jpg (written last).")
    common(seg)
    return parser


def _settings_from_args(args):
    from camseg.pipeline import DevelopSettings

    if args.settings is not None:
        try:
            # UTF-8 as JSON is (RFC 8259), with the byte order mark some Windows editors write
            # taken off: it failed as "Unexpected UTF-8 BOM", and a file in another encoding as
            # a bare "'utf-8' codec can't decode byte" that named no file.
            settings = DevelopSettings.from_json(args.settings.read_text(encoding="utf-8-sig"))
        except OSError as exc:
            raise ValueError(f"cannot read --settings {str(args.settings)!r}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"--settings {str(args.settings)!r} is not UTF-8 text ({exc.reason} at byte "
                             f"{exc.start}); save it as UTF-8") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"--settings {str(args.settings)!r} is not valid JSON: {exc}") from exc
        except (ValueError, TypeError) as exc:  # ("unknown settings ['styl']" had named no file)
            raise ValueError(f"--settings {str(args.settings)!r}: {exc}") from exc
        file_settings = settings
    else:
        settings = DevelopSettings()
    changes = {}
    if args.style is not None:
        if not args.style.strip():  # (--style "$LOOK" with LOOK unset: the message named a Python function)
            from camseg.pipeline import available_styles

            raise ValueError(f"--style is empty; name one of {available_styles()} (camseg develop --list)")
        changes["style"] = args.style.lower()  # the names are lower case; "Vibrant" means vibrant
    if args.style_strength is not None:
        changes["style_strength"] = args.style_strength
    if args.portrait is not None:
        changes["portrait"] = None if args.portrait.lower() == "none" else args.portrait.lower()
    if args.iso is not None:
        changes["iso"] = args.iso
    for stage in ("denoise", "sharpen", "tone_map"):
        if getattr(args, stage) is not None:
            changes[stage] = getattr(args, stage)
    if changes:
        settings = settings.replace(**changes)
    if args.f_number is not None:
        # After the portrait effect is set: a new effect first drops the options only the old
        # one had (DevelopSettings.replace), then the blur gets its aperture.
        params = {k: dict(v) for k, v in settings.params.items()}
        params.setdefault("portrait", {})["f_number"] = args.f_number
        settings = settings.replace(params=params)
    if args.settings is not None:
        # A bad value the file holds (style "bogus", f_number 0) was reported without the
        # file's name. Named where the file alone fails too (one the command line overrides
        # is not an error).
        from camseg.pipeline import check_settings

        try:
            check_settings(settings)
        except ValueError as exc:
            try:
                check_settings(file_settings)
            except ValueError:
                raise ValueError(f"--settings {str(args.settings)!r}: {exc}") from exc
            raise
    return settings


def _save_settings(path: Path, text: str) -> None:
    """Write ``text`` to ``path``: atomically to the file a link points to, straight to a device
    or pipe (``--save-settings /dev/stdout``), which a rename would replace with a plain file."""
    from camseg.io import _atomic_write

    target = Path(os.path.realpath(path))
    # /dev/stdout redirected to a file resolves to that file, whose replacement the shell would
    # never see: names under /dev and /proc are written as they are.
    if str(path).startswith(("/dev/", "/proc/")) or (target.exists() and not target.is_file()):
        with open(path, "w") as fh:
            fh.write(text)
        return
    if target.is_file():
        # Only a settings file (a JSON object) is replaced: `--save-settings *.jpg` (a shell
        # glob after the option) wrote the look over the first photo, which was lost.
        with open(target, "rb") as fh:
            start = fh.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
        if start and not start.startswith(b"{"):
            raise ValueError(f"--save-settings {str(path)!r} is a file that is not a settings file (JSON), "
                             f"which camseg never replaces (a photo named by mistake?); name a new .json file")
    _atomic_write(target, lambda fh: fh.write(text.encode()))


class _HelpWithNames(argparse.HelpFormatter):
    """Fills ``{styles}`` and ``{portrait_effects}`` in help texts from the pipeline, only when
    help is shown: importing the pipeline costs ~0.3 s, which ``--version`` and every usage
    error would otherwise pay."""

    def _get_help_string(self, action):
        text = super()._get_help_string(action) or ""
        if "{styles}" in text or "{portrait_effects}" in text:
            from camseg.pipeline import available_portrait_effects, available_styles

            text = text.replace("{styles}", ", ".join(available_styles())).replace(
                "{portrait_effects}", ", ".join(available_portrait_effects()))
        return text


# Per command: the modules whose kernels every run calls (a portrait effect's add a few seconds
# when first used), and how long their first compile takes.
_KERNEL_MODULES = {
    "segment": (("effects.mask_refine",), "a few seconds"),
    "develop": (("effects.mask_refine", "effects.denoise", "effects.noise_profile", "effects._jpeg",
                 "effects.sharpen", "effects.tone_map", "effects.styles", "effects._srgb", "camseg.io",
                 "camseg.pipeline"), "15-25 s"),
}


def _say_if_kernels_compile(command: str) -> None:
    """Say so when this run will first compile the image kernels (once per installation):
    the progress bar would otherwise sit at 0 for 15-25 s."""
    from effects._jit import cached_kernel_share

    modules, compile_time = _KERNEL_MODULES[command]
    share = cached_kernel_share(modules)
    if share is not None and share < 0.5:
        print(f"camseg {command}: first run of this installation: compiling the image kernels "
              f"for this machine (once, {compile_time})", file=sys.stderr)


def main(argv=None) -> int:
    """Entry point of the ``camseg`` command; returns the exit status."""
    parser = build_parser()
    as_command = argv is None  # the camseg command itself (or python -m camseg)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["develop"] and "--list" in argv[1:]:
        # Listing needs no photos nor output folder (argparse would ask for them first).
        from camseg.pipeline import available_portrait_effects, available_styles

        print("styles:          " + ", ".join(available_styles() or ["(none installed)"]))
        print("portrait effects: " + ", ".join(available_portrait_effects() or ["(none installed)"]))
        return 0
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2

    try:
        # numpy, OpenCV, onnxruntime: about half a second, when a Ctrl-C printed the import's
        # traceback; onnxruntime turns one into "ImportError: initialization failed", which the
        # command reported as an error (exit 2).
        from camseg.batch import quiet_decoder_warnings, run_batch
        importlib.import_module("camseg.segmenter")  # (onnxruntime)
    except (KeyboardInterrupt, ImportError) as exc:
        if isinstance(exc, ImportError) and not isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            print(f"camseg {args.command}: error: {exc}", file=sys.stderr)  # (a package missing)
            return 2
        print("camseg: interrupted", file=sys.stderr)
        if as_command:
            # (A KeyboardInterrupt raised inside exec(), as dataclasses create their methods, makes
            # CPython end the process by SIGINT at exit, whatever status it returns.)
            sys.stderr.flush()
            os._exit(130)
        return 130

    quiet_decoder_warnings()
    if not args.quiet:
        _say_if_kernels_compile(args.command)
    # Killed (kill -9, the OOM killer), the command leaves its worker pool's semaphores to
    # Python's resource tracker, which removes them and warns "There appear to be 5 leaked
    # semaphore objects": alarming noise after a kill the batch is made to survive. The tracker
    # process is started with this process's warning options, read when it starts.
    sys.warnoptions.append("ignore:resource_tracker:UserWarning")
    from camseg.pipeline import check_settings

    if as_command:
        # SIGTERM (kill, systemd, docker stop) as Ctrl-C: stop after the photos in progress,
        # clean up, say how to resume. (The command died at once, workers mid-photo, leaving
        # temporaries in --out until the next run.)
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        kwargs = {}
        if args.command == "develop":
            settings = _settings_from_args(args)
            if args.f_number is not None and settings.portrait != "blur":
                raise ValueError("--f-number only applies with --portrait blur")
            if args.save_settings is not None:
                # Checked first: a mistyped --style saved over a good look file, and the run then
                # refused it anyway.
                check_settings(settings)
                try:
                    _save_settings(args.save_settings, settings.to_json() + "\n")
                except OSError as exc:  # ("[Errno 21] Is a directory: 'looks'" named no option)
                    raise ValueError(f"cannot write --save-settings {str(args.save_settings)!r}: "
                                     f"{exc.strerror or exc}; name a file in a folder you can write to") from exc
            kwargs = dict(settings=settings, output_format=args.output_format, quality=args.quality,
                          bit_depth=args.bit_depth)
        def report(result):
            if result.status == "failed":
                print(f"camseg: FAILED {result.source}: {result.message}", file=sys.stderr)
            elif result.message and not args.quiet and result.status in ("done", "passed over"):
                print(f"camseg: note {result.source}: {result.message}", file=sys.stderr)

        summary = run_batch(args.inputs, args.out, task=args.command, jobs=args.jobs,
                            overwrite=args.overwrite, model_path=args.model,
                            progress=not (args.no_progress or args.quiet), on_result=report,
                            dask_scheduler=args.dask, quiet_start=as_command, **kwargs)
    except (ImportError, ValueError, TypeError, OSError) as exc:  # (OSError: worker processes cannot start here)
        print(f"camseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        stopped = "stopped (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
        print(f"camseg: {stopped}; run the same command again to resume", file=sys.stderr)
        if as_command:
            # What is left is the interpreter's exit (joining the pool's threads and idle
            # workers): a Ctrl-C there printed a traceback; it now ends the command at once.
            # (Workers exit by themselves when the command is gone.) Not for a caller's own
            # process (main(argv) from Python): its signal handling is its own.
            _end_on_signals(130, 143)
        return 143 if isinstance(exc, _Terminated) else 130
    status = 0 if summary.ok else 1
    if as_command:
        # The batch is done: a Ctrl-C or SIGTERM while the summary is printed or the interpreter
        # exits (joining the pool's threads) printed a traceback (exit 0 or a death by SIGINT);
        # it now ends the command with the batch's own status.
        _end_on_signals(status, status)
    for note in summary.notes:
        print(f"camseg {args.command}: warning: {note}", file=sys.stderr)
    if not args.quiet or not summary.ok:
        print(f"camseg {args.command}: {summary}", file=sys.stderr)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
