"""Terminal plumbing for the CLI: quiet third-party logs, progress bars, and the error boundary.

Every error a user can cause becomes one line `error: ...` on stderr with exit code 2; a bug
becomes one line too (exit 1), with the traceback only under --verbose.
"""
import json
import logging
import os
import sys
import traceback

import click

from omnivideo.errors import OmniVideoError, is_out_of_memory

EXIT_USER_ERROR = 2


def quiet_libraries() -> None:
    """Silence progress bars and chatty warnings of transformers/bitsandbytes/gradio on the console."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # FFmpeg/OpenCV print their own diagnostics on stderr from C; the reader turns failures into
    # one clear error, so their lines are noise (must be set before cv2 is imported).
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    # bitsandbytes looks for optional kernels from the HF kernel hub at import and warns when it finds
    # none for this machine; its fallback is correct, so the warning is noise.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    click.echo(f"error: {first}", err=True)
    sys.exit(code)


class ErrorBoundaryGroup(click.Group):
    """A click group that turns every failure into a single `error:` line."""

    def main(self, args=None, prog_name=None, **extra):
        verbose = "--verbose" in (args if args is not None else sys.argv[1:])
        try:
            code = super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
            # without standalone mode click returns ctx.exit(n)'s code instead of exiting
            if isinstance(code, int) and code != 0:
                sys.exit(code)
            return code
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            fail("aborted", 130)
        except click.ClickException as e:
            fail(e.format_message(), e.exit_code if e.exit_code else EXIT_USER_ERROR)
        except OmniVideoError as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:
            sys.exit(0)
        except Exception as e:
            if verbose:   # an out-of-memory too: where it struck is what tells a user what to lower
                traceback.print_exc()
            if is_out_of_memory(e):  # host MemoryError or CUDA OOM: the user can fix it, not a bug
                where = "GPU memory" if not isinstance(e, MemoryError) else "memory"
                fail(f"out of {where}: fewer visual tokens (--max-frames / --fps) lower it, and so does "
                     "--gpu-memory GB set to what the GPU really has free (a KV that does not fit then stays "
                     "in host memory); `probe FILE --gpu-memory GB` shows the plan")
            # a bug, not a user error: one line, traceback on request
            fail(f"internal error: {type(e).__name__}: {e} (run with --verbose for the traceback)", 1)


class Progress:
    """A `progress(done, total, stage)` callback that draws one tqdm bar per stage on stderr. The pipelined
    ingest reports decode, vision and prefill in turns: each stage keeps its own bar until it completes."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bars: dict = {}

    def __call__(self, done: int, total: int, stage: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total, desc=stage, unit="", leave=False, file=sys.stderr,
                                           position=len(self._bars))
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()
            del self._bars[stage]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars = {}


def print_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))
