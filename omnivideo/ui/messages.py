"""Every failure becomes one clear message in the page, and the server keeps serving.

The same wording as the CLI (`error: ...` there): an `OmniVideoError` is shown as is; running out
of memory is shown with the planner's suggestion; anything else is a bug, shown in one line and
logged with its traceback.

    try:
        ...
    except Exception as e:      # the UI boundary, like the CLI's ErrorBoundaryGroup
        status = error_notice(e, oom_hint=lambda: ws.oom_hint(path))    # a red box in the page

Successes and plain information get their own look (`notice(text, "ok" | "info")`), so a failure
never reads like a success; styles.py draws the three kinds.
"""
import logging
from collections.abc import Callable

from omnivideo.errors import OmniVideoError, VideoCancelled, is_out_of_memory

log = logging.getLogger(__name__)
NOTICE_KINDS = ("ok", "error", "info")


def notice(text: str, kind: str = "info") -> str:
    """Markdown for a status line of one `kind` ("ok", "error", "info"); "" stays "" (no empty box).

    The blank lines inside the <div> let the markdown in `text` (a **file name**) render; the kind's
    colour and sign come from styles.py (a text sign, not an emoji a machine may lack the font for)."""
    assert kind in NOTICE_KINDS, kind
    if not text:
        return ""
    role = "alert" if kind == "error" else "status"
    return f'<div class="ov-notice ov-{kind}" role="{role}">\n\n{text}\n\n</div>'


def error_notice(e: BaseException, oom_hint: Callable[[], str | None] | None = None) -> str:
    """`error_text(e)` as an error notice (a cancel is information, not a failure)."""
    return notice(error_text(e, oom_hint), "info" if isinstance(e, VideoCancelled) else "error")


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
