"""The app in a real browser (Playwright + Debian chromium) against `launcher.py serve --model tiny`.

Add a generated H.264 video by upload, see the planner's estimate, wait for ingest, open it in the
chat, ask, watch the answer stream in, click a frame of the strip and check the player seeked;
restart the server, reload, find the session and resume it. Screenshots go to a temp dir (and to
$OMNIVIDEO_UI_SCREENSHOTS when set: that is how docs/screenshots/ is refreshed).
Citation links are checked on a fixed answer (the tiny model's answers are noise).
"""
import os
import shutil
from pathlib import Path

import gradio as gr
import pytest
from playwright.sync_api import sync_playwright
from ui_testkit import ServeProcess, free_port, make_h264

from omnivideo.ui.chat import build_chat
from omnivideo.ui.citations import linkify
from omnivideo.ui.player import INSTALL_SEEK_JS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
QUESTION = "What happens at the start?"
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


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "needs Debian's chromium (apt-get install chromium; `make test` does it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    out = tmp_path / "screenshots"
    out.mkdir()

    def save(page, name: str):
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        if os.environ.get("OMNIVIDEO_UI_SCREENSHOTS"):
            dest = Path(os.environ["OMNIVIDEO_UI_SCREENSHOTS"])
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(out / f"{name}.png", dest / f"{name}.png")
    save.dir = out
    return save


def add_and_open(page, clip: Path, shots):
    page.locator("input[type=file]").first.set_input_files(str(clip))
    page.locator("#plan").get_by_text("visual tokens").wait_for(timeout=30_000)    # the estimate, before ingest
    page.get_by_role("button", name="Add to library").click()
    page.locator("#library-status").get_by_text("Added").wait_for(timeout=90_000)
    page.locator("#library").get_by_text("clip.mp4").filter(visible=True).first.wait_for(timeout=10_000)
    shots(page, "library")
    page.get_by_role("button", name="Open in chat").click()
    page.wait_for_function("() => document.querySelectorAll('#strip img').length >= 4", timeout=60_000)
    page.wait_for_function("() => { const v = document.querySelector('#player video');"
                           " return v && v.readyState >= 1 && v.duration > 5; }", timeout=30_000)


def ask_and_watch_stream(page) -> str:
    page.evaluate(WATCH_ANSWER)
    box = page.get_by_label("Message")
    box.fill(QUESTION)
    box.press("Enter")
    page.locator("#details").get_by_text("TTFT").wait_for(timeout=90_000)
    lengths = page.evaluate("() => [...window.__answerLengths]")
    answer = page.locator('#chat [data-testid="bot"]').last.inner_text().strip()
    assert answer and "TTFT" in answer, answer
    # streamed: the answer was seen at several lengths before it was complete
    assert len([n for n in lengths if 0 < n < len(answer)]) >= 2, lengths
    return answer


def seek_with_the_strip(page):
    assert page.evaluate(CURRENT_TIME) == 0
    thumb = page.locator("#strip .thumbnail-item, #strip button:has(img)").nth(6)
    caption = thumb.inner_text().strip()                      # "00:03.2": the frame's time
    mm, ss = caption.split(":")
    thumb.click()
    page.wait_for_function(f"() => Math.abs(({CURRENT_TIME})() - {int(mm) * 60 + float(ss)}) < 0.15", timeout=10_000)


def test_library_chat_strip_restart_resume(browser, shots, tmp_path):
    data, clip = tmp_path / "home", make_h264(tmp_path / "clip.mp4", seconds=6)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    with ServeProcess(data, free_port(), "--max-new-tokens", "64") as server:
        page.goto(server.wait_ready().url, wait_until="domcontentloaded", timeout=30_000)
        page.wait_for_function("() => document.title === 'OmniVideo'", timeout=30_000)
        add_and_open(page, clip, shots)
        ask_and_watch_stream(page)
        seek_with_the_strip(page)
        shots(page, "chat")
        page.get_by_role("tab", name="Settings").click()
        page.get_by_role("button", name="Apply settings").wait_for(timeout=10_000)
        shots(page, "settings")

    with ServeProcess(data, free_port()) as server:              # a restart: new process, same data dir
        page.goto(server.wait_ready().url, wait_until="domcontentloaded", timeout=30_000)
        page.get_by_role("tab", name="Chat").click()
        page.locator("#sessions").get_by_text(QUESTION).filter(visible=True).first.wait_for(timeout=30_000)
        page.get_by_label("Session").click()
        page.get_by_role("option").filter(has_text=QUESTION).first.click()
        page.get_by_role("button", name="Resume").click()
        page.locator("#chat").get_by_text(QUESTION).wait_for(timeout=60_000)
        page.locator("#video-line").get_by_text("loaded from the cache").wait_for(timeout=10_000)
        shots(page, "sessions")
    page.close()
    assert sorted(p.name for p in shots.dir.iterdir()) == ["chat.png", "library.png", "sessions.png", "settings.png"]


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
