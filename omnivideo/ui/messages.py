"""Every failure becomes one clear message in the page, and the server keeps serving.

The same wording as the CLI (`error: ...` there): an `OmniVideoError` is shown as is; running out
of memory is shown with the planner's suggestion; anything else is a bug, shown in one line and
logged with its traceback.

    try:
        ...
    except Exception as e:      # the UI boundary, like the CLI's ErrorBoundaryGroup
        status = error_text(e, oom_hint=lambda: ws.oom_hint(path))
"""
import logging
from collections.abc import Callable

from omnivideo.errors import OmniVideoError, VideoCancelled, is_out_of_memory

log = logging.getLogger(__name__)


def error_text(e: BaseException, oom_hint: Callable[[], str | None] | None = None) -> str:
    """The one line the page shows for `e`."""
    if isinstance(e, VideoCancelled):
        return "Cancelled."
    if isinstance(e, OmniVideoError):
        return f"Error: {e}"
    if is_out_of_memory(e):
        hint = None
        if oom_hint is not None:
            try:
                hint = oom_hint()
            except OmniVideoError as plan_error:
                log.warning("no planner suggestion after OOM: %s", plan_error)
        return "Out of memory: " + (hint or "fewer visual tokens lower it (Settings: fps / max frames)")
    log.exception("internal error in the UI", exc_info=e)
    return f"Internal error: {type(e).__name__}: {e} (details in the server log)"
