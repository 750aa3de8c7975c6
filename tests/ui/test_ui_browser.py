"""The app in a real browser (Playwright + Debian chromium) against `launcher.py serve --model tiny`.

Add a generated H.264 video by upload, see the planner's estimate, wait for ingest, follow the offered
next step into the chat, ask, watch the answer stream in with its details line (once); at 1400, 1024
and 390 px click every frame of the strip and check the player seeked to it; restart the server,
reload, pick the session by a click on its row and resume it: the answer comes back with its
details. Screenshots go to a temp dir (and to $OMNIVIDEO_UI_SCREENSHOTS when set: that is how
docs/screenshots/ is refreshed). Citation links are checked on a fixed answer (the tiny model's
answers are noise). Stop, the input while streaming and the failures: test_ui_browser_controls.py.
"""
import os
import shutil
from pathlib import Path

import gradio as gr
import pytest
from ui_testkit import ServeProcess, browser, free_port, make_h264  # noqa: F401  (browser: a fixture)

from omnivideo.ui.chat import build_chat
from omnivideo.ui.citations import linkify
from omnivideo.ui.player import INSTALL_SEEK_JS
from playwright.sync_api import expect  # noqa: E402  (auto-waiting state checks)

QUESTION = "What happens at the start?"
DESKTOP, LAPTOP, PHONE = (1400, 900), (1024, 768), (390, 844)
CURRENT_TIME = "() => document.querySelector('#player video').currentTime"
# Every distinct length the newest answer had while it streamed (a MutationObserver on the chat).
WATCH_ANSWER = """() => {
  window.__answerLengths = new Set();
  const chat = document.querySelector('#chat');
  new MutationObserver(() => {
    const bots = chat.querySelectorAll('[data-testid="bot"]');
    if (bots.length) window.__answerLengths.add(bots[bots.length - 1].innerText.trim().length);
  }).observe(chat, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture
def shots(tmp_path):
    out = tmp_path / "screenshots"
    out.mkdir()

    def save(page, name: str):
        page.wait_for_timeout(400)        # Gradio fades buttons in and out: shoot them settled
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        if os.environ.get("OMNIVIDEO_UI_SCREENSHOTS"):
            dest = Path(os.environ["OMNIVIDEO_UI_SCREENSHOTS"])
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(out / f"{name}.png", dest / f"{name}.png")
    save.dir = out
    return save


def viewport(page, size):
    page.set_viewport_size({"width": size[0], "height": size[1]})


def add_and_open(page, clip: Path, shots):
    for name in ("Cancel", "Open in chat", "Re-ingest with current settings", "Remove"):
        assert page.get_by_role("button", name=name, exact=True).is_disabled(), name   # nothing to act on yet
    page.locator("input[type=file]").first.set_input_files(str(clip))
    page.locator("#plan").get_by_text("visual tokens").wait_for(timeout=30_000)    # the estimate, before ingest
    memory = next(line for line in page.locator("#plan").inner_text().splitlines() if "estimated GPU" in line)
    assert "of (no GPU" not in memory and memory.endswith("(no GPU detected on this machine)"), memory
    page.get_by_role("button", name="Add to library").click()
    page.locator("#library-status .ov-ok").get_by_text("Added").wait_for(timeout=90_000)
    page.locator("#library").get_by_text("clip.mp4").filter(visible=True).first.wait_for(timeout=10_000)
    next_step = page.locator("#open-added")                     # the next step, offered where the user looks
    assert next_step.is_visible() and next_step.inner_text().strip() == "Open clip.mp4 in chat →"
    shots(page, "library")
    viewport(page, PHONE)
    shots(page, "library-phone")
    viewport(page, DESKTOP)
    next_step.click()
    page.wait_for_function("() => document.querySelectorAll('#strip a.ov-frame img').length === 12", timeout=60_000)
    page.wait_for_function("() => { const v = document.querySelector('#player video');"
                           " return v && v.readyState >= 1 && v.duration > 5; }", timeout=30_000)


def ask_and_watch_stream(page) -> str:
    page.evaluate(WATCH_ANSWER)
    box = page.locator("#message textarea")
    box.fill(QUESTION)
    box.press("Enter")
    page.locator("#chat .ov-details").get_by_text("TTFT").wait_for(timeout=90_000)
    lengths = page.evaluate("() => [...window.__answerLengths]")
    answer = page.locator('#chat [data-testid="bot"]').last.inner_text().strip()
    assert answer and "TTFT" in answer, answer
    # streamed: the answer was seen at several lengths before it was complete
    assert len([n for n in lengths if 0 < n < len(answer)]) >= 2, lengths
    # its details are shown once, in the answer (no second copy under the message box)
    assert page.locator("#chat .ov-details").count() == 1 and page.locator("#details").count() == 0
    return answer


def every_frame_seeks(page, size):
    """At this window size every strip frame lies inside the page and the strip, and a click on it
    seeks the player to its time."""
    viewport(page, size)
    frames = page.locator("#strip a.ov-frame")
    assert frames.count() == 12
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")   # no sideways scroll
    strip = page.locator("#strip").bounding_box()
    for i in [*range(1, 12), 0]:                                 # the last click goes back to 0
        frame = frames.nth(i)
        frame.scroll_into_view_if_needed()
        box, strip = frame.bounding_box(), page.locator("#strip").bounding_box()
        assert 0 <= box["x"] and box["x"] + box["width"] <= size[0], (size, i, box)
        assert strip["x"] <= box["x"] and box["x"] + box["width"] <= strip["x"] + strip["width"] + 0.5, (size, i)
        assert box["width"] >= 60, (size, i, box)               # a target a finger can hit
        seconds = float(frame.get_attribute("href").removeprefix("#t="))
        frame.click()
        page.wait_for_function(f"() => Math.abs(({CURRENT_TIME})() - {seconds}) < 0.15", timeout=10_000)


def test_library_chat_strip_restart_resume(browser, shots, tmp_path):
    data, clip = tmp_path / "home", make_h264(tmp_path / "clip.mp4", seconds=6)
    page = browser.new_page(viewport={"width": DESKTOP[0], "height": DESKTOP[1]})
    # 256 tokens: long enough to be seen streaming (the page redraws the answer at most every 50 ms)
    with ServeProcess(data, free_port(), "--max-new-tokens", "256") as server:
        page.goto(server.wait_ready().url, wait_until="domcontentloaded", timeout=30_000)
        page.wait_for_function("() => document.title === 'OmniVideo'", timeout=30_000)
        add_and_open(page, clip, shots)
        ask_and_watch_stream(page)
        for size in (DESKTOP, LAPTOP, PHONE):
            every_frame_seeks(page, size)
        page.evaluate("() => window.scrollTo(0, 0)")
        shots(page, "chat-phone")
        viewport(page, DESKTOP)
        page.locator("#strip a.ov-frame").nth(6).click()        # the clock in the player shows 00:03
        shots(page, "chat")
        page.get_by_role("tab", name="Settings").click()
        page.get_by_role("button", name="Apply settings").wait_for(timeout=10_000)
        shots(page, "settings")

    with ServeProcess(data, free_port()) as server:              # a restart: new process, same data dir
        page.goto(server.wait_ready().url, wait_until="domcontentloaded", timeout=30_000)
        page.get_by_role("tab", name="Sessions").click()         # its own tab: in view at any window height
        row = page.locator("#sessions").get_by_text(QUESTION).filter(visible=True).first
        row.wait_for(timeout=30_000)
        assert row.bounding_box()["y"] + row.bounding_box()["height"] <= DESKTOP[1]
        resume = page.get_by_role("button", name="Resume")
        assert resume.is_disabled()                              # nothing picked yet
        row.click()                                              # a click on the row picks the session
        page.wait_for_function("() => document.querySelector('#session-pick input').value"
                               f".startsWith({QUESTION!r})", timeout=10_000)
        expect(resume).to_be_enabled(timeout=10_000)             # after the server's round trip
        shots(page, "sessions")
        resume.click()
        page.locator("#chat").get_by_text(QUESTION).wait_for(timeout=60_000)
        page.locator("#video-line").get_by_text("loaded from the cache").wait_for(timeout=10_000)
        details = page.locator("#chat .ov-details")              # the resumed answer keeps its details
        assert details.count() == 1 and "TTFT" in details.inner_text() and "tokens generated" in details.inner_text()
    page.close()
    assert sorted(p.name for p in shots.dir.iterdir()) == [
        "chat-phone.png", "chat.png", "library-phone.png", "library.png", "sessions.png", "settings.png"]


def test_citation_links_seek_the_player(browser, tmp_path):
    """A fixed answer through the real chat components, Gradio's sanitizer and the page script."""
    clip = make_h264(tmp_path / "clip.mp4", seconds=6)
    answer = linkify("The clock passes [00:03], then [00:01-00:02] and [09:59].", duration_s=6.0)
    with gr.Blocks() as demo:
        view = build_chat()
        demo.load(lambda: ([{"role": "user", "content": "When?"}, {"role": "assistant", "content": answer}],
                           str(clip)), None, [view.chatbot, view.player])
        demo.load(None, None, None, js=INSTALL_SEEK_JS)
    _, url, _ = demo.launch(server_port=free_port(), prevent_thread_lock=True, quiet=True, ssr_mode=False,
                            allowed_paths=[str(clip)])
    page = browser.new_page()
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=30_000)
        page.wait_for_function("() => { const v = document.querySelector('#player video');"
                               " return v && v.readyState >= 1; }", timeout=30_000)
        links = page.locator('#chat a[href^="#t="]')
        links.first.wait_for(timeout=10_000)
        assert [links.nth(i).get_attribute("href") for i in range(links.count())] == ["#t=3", "#t=1", "#t=2"]
        assert page.locator("#chat").get_by_text("[09:59]").count() == 1     # past the end: plain text
        before = page.url
        page.get_by_role("link", name="00:03").click()
        page.wait_for_function(f"() => Math.abs(({CURRENT_TIME})() - 3) < 0.05", timeout=10_000)
        page.get_by_role("link", name="00:01").click()
        page.wait_for_function(f"() => Math.abs(({CURRENT_TIME})() - 1) < 0.05", timeout=10_000)
        assert page.url == before and len(browser.contexts[-1].pages) == 1   # no navigation, no new tab
    finally:
        page.close()
        demo.close()
