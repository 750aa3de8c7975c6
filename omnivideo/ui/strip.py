"""The frame strip under the player: thumbnails over the video, each a seek link, wrapping at any width.

Each frame is an `<a href="#t=SECONDS">` around its thumbnail and its time, the same kind of link as
an answer's citations, so the page script (omnivideo/ui/player.py) seeks the player on a click (or
Enter) with no event of its own. The strip is a CSS grid that fills rows and wraps (styles.py): no
frame is ever cut off or hidden behind a scroll bar the user cannot see, from a desktop to a phone.
Thumbnails are small JPEG data URIs, so they need no file serving (and no entry in the allow-list).

    html = strip_html(*ws.strip(chat.video))    # -> gr.HTML(elem_id="strip")
"""
import base64
import html
import io

import numpy as np
from PIL import Image

THUMB_WIDTH = 192   # px: sharp at the grid's widest cell (about 2x its CSS width on a phone)
EMPTY_STRIP = '<p class="ov-strip-empty">The frames of the open video appear here: click one to play from there.</p>'


def thumbnail_uri(frame: np.ndarray, width: int = THUMB_WIDTH) -> str:
    """An RGB uint8 [H, W, 3] frame as a `data:image/jpeg` URI, scaled down to `width` (never up)."""
    image = Image.fromarray(np.ascontiguousarray(frame))
    if image.width > width:
        image = image.resize((width, max(1, round(image.height * width / image.width))), Image.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def strip_html(frames: list[tuple[np.ndarray, str]], times: list[float]) -> str:
    """The strip for frames [(image, caption)] at `times` (seconds); the empty note when there are none."""
    if not frames:
        return EMPTY_STRIP
    cells = []
    for (image, caption), seconds in zip(frames, times):
        label = html.escape(caption)
        cells.append(f'<a class="ov-frame" href="#t={seconds:g}" title="Play from {label}">'
                     f'<img src="{thumbnail_uri(image)}" alt="Frame at {label}"><span>{label}</span></a>')
    return (f'<div class="ov-strip-title">Sampled frames · click one to play from there</div>'
            f'<div class="ov-strip">{"".join(cells)}</div>')
