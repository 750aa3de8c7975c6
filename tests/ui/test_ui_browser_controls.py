"""The page's controls in a real browser (Playwright + Debian chromium, `launcher.py serve --model tiny`):
Stop during a long answer (within a second, then a follow-up works), the input refused while an answer
streams, Enter in the path box, failures that leave the panels and the typed values in place with a
message where it belongs, a bad upload named and not kept, a click on a table row picking it, and an
ingest's progress drawn once, on the status line, in the estimate's units. One server for the module;
each test adds what it needs (an add that finds the video already there is a success too)."""
import re
import time

import pytest
from ui_testkit import ServeProcess, browser, free_port, make_h264  # noqa: F401  (browser: a fixture)
from playwright.sync_api import expect  # noqa: E402  (auto-waiting state checks)

PATH_BOX = "#local-path input, #local-path textarea"
LONG_ANSWER = "Describe every frame of the video in detail."
# Where Gradio draws progress (its status tracker's bar and text), and what the bar said, while it runs.
WATCH_PROGRESS = """() => {
  window.__progressOwners = new Set();
  window.__progressTexts = new Set();
  new MutationObserver(() => {
    for (const e of document.querySelectorAll('.progress-level, .progress-text')) {
      window.__progressOwners.add((e.closest('[id]') || {}).id || '(no id)');
      if (e.classList.contains('progress-level')) window.__progressTexts.add(e.innerText.trim());
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("controls")
    clips = (make_h264(home / "one.mp4", seconds=6), make_h264(home / "two.mp4", seconds=4, size="160x120"),
             make_h264(home / "forty.mp4", seconds=40))
    with ServeProcess(home / "data", free_port(), "--max-new-tokens", "24") as server:
        server.wait_ready()
        yield server, home / "data", clips


@pytest.fixture
def page(browser, served):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(served[0].url, wait_until="domcontentloaded", timeout=30_000)
    page.wait_for_function("() => document.title === 'OmniVideo'", timeout=30_000)
    page.locator("#library").wait_for(timeout=30_000)
    yield page
    page.close()


def no_error_pills(page):
    """Gradio's red "Error" over an output whose event failed: none anywhere, and no toast either."""
    assert page.get_by_text("Error", exact=True).filter(visible=True).count() == 0
    assert page.locator('[data-testid="toast-body"]').count() == 0


def add_by_path(page, path):
    """Type a path, Enter (the estimate), Add; the status says it is in the library either way."""
    page.locator(PATH_BOX).first.fill(str(path))
    page.locator(PATH_BOX).first.press("Enter")
    page.locator("#plan").get_by_text(path.name).wait_for(timeout=30_000)
    page.get_by_role("button", name="Add to library").click()
    page.locator("#library-status").get_by_text(path.name).wait_for(timeout=90_000)


def library_state(page) -> tuple[str, str]:
    return page.locator("#library").inner_text(), page.locator("#library-entry input").input_value()


def set_answer_length(page, tokens: int):
    page.get_by_role("tab", name="Settings").click()
    page.locator("#answer-length input[type=number]").fill(str(tokens))
    page.locator("#answer-length input[type=number]").press("Enter")
    page.get_by_role("button", name="Apply settings").click()
    page.locator("#settings-status .ov-ok").get_by_text("applied").wait_for(timeout=10_000)


def test_library_failures_keep_the_panels(page, served):
    _, data, (one, two, _) = served
    assert page.get_by_role("button", name="Cancel").is_disabled()          # nothing to cancel
    add_by_path(page, one)                                                  # Enter in the path box estimates
    add_by_path(page, two)
    assert page.locator("#library-status .ov-ok, #library-status .ov-info").count() == 1
    page.locator("#library").get_by_text("two.mp4").filter(visible=True).first.wait_for(timeout=10_000)
    before = library_state(page)

    page.locator(PATH_BOX).first.fill("")                   # nothing chosen: said at the field, panels intact
    page.get_by_role("button", name="Add to library").click()
    page.get_by_text("Choose a video: upload one").wait_for(timeout=10_000)
    assert library_state(page) == before
    no_error_pills(page)

    page.locator(PATH_BOX).first.fill(str(data / "missing.mp4"))            # a failed add: a red status
    page.get_by_role("button", name="Add to library").click()
    page.locator("#library-status .ov-error").get_by_text("video not found").wait_for(timeout=10_000)
    assert "Added" not in page.locator("#library-status").inner_text()      # the old success is gone
    assert library_state(page) == before and page.locator("#open-added").is_hidden()
    no_error_pills(page)

    page.locator("#library").get_by_text("one.mp4").filter(visible=True).first.click()   # a row click picks
    page.wait_for_function("() => document.querySelector('#library-entry input').value.startsWith('one.mp4')",
                           timeout=10_000)
    page.locator("#library").get_by_text("two.mp4").filter(visible=True).first.click()
    page.wait_for_function("() => document.querySelector('#library-entry input').value.startsWith('two.mp4')",
                           timeout=10_000)


def test_uploads_say_what_is_wrong_and_keep_no_junk(page, served, tmp_path):
    _, data, (one, *_) = served
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video\n" * 50)
    page.locator("input[type=file]").first.set_input_files(str(notes))
    error = page.locator("#plan .ov-error")
    error.get_by_text("notes.mp4: cannot open as a video").wait_for(timeout=30_000)
    assert "gradio" not in error.inner_text() and str(data) not in error.inner_text()   # the user's name only
    page.locator("#upload").get_by_text("notes.mp4").wait_for(state="detached", timeout=10_000)   # box cleared
    assert sorted(p.name for p in data.rglob("notes*")) == []               # not kept, not left in the upload dir

    page.locator("input[type=file]").first.set_input_files(str(one))        # an upload and a path at once
    page.locator("#plan").get_by_text("visual tokens").wait_for(timeout=30_000)
    page.locator(PATH_BOX).first.fill(str(one))
    page.locator(PATH_BOX).first.press("Enter")
    page.get_by_text("A file is uploaded as well").wait_for(timeout=10_000)
    assert page.locator(PATH_BOX).first.input_value() == str(one)            # what was typed stays
    page.get_by_role("button", name="Clear").first.click()                  # clearing the upload clears its estimate
    page.locator("#plan").get_by_text("The planner's estimate appears here").wait_for(timeout=10_000)
    no_error_pills(page)


def test_invalid_settings_keep_the_fields(page):
    page.get_by_role("tab", name="Settings").click()
    fps, frames = page.get_by_label("Frames per second"), page.get_by_label("Max frames (0 = model default)")
    fps.fill("0")
    frames.fill("1")
    page.get_by_role("button", name="Apply settings").click()
    page.get_by_text("fps must be in (0, 60], got 0.0").wait_for(timeout=10_000)      # beside each field
    page.get_by_text("max-frames must be >= 2").wait_for(timeout=10_000)
    assert (fps.input_value(), frames.input_value(), page.locator("#model textarea").input_value()) == ("0", "1", "tiny")
    assert page.locator("#settings-status").inner_text().strip() == ""                  # nothing applied
    no_error_pills(page)
    fps.fill("2")
    frames.fill("0")
    page.get_by_role("button", name="Apply settings").click()
    page.locator("#settings-status .ov-ok").get_by_text("Settings applied").wait_for(timeout=10_000)
    assert page.get_by_text("fps must be in").count() == 0


def test_stop_ends_a_long_answer_and_a_follow_up_works(page, served):
    _, _, (one, *_) = served
    set_answer_length(page, 4096)                               # long enough to press Stop while it streams
    page.get_by_role("tab", name="Library").click()
    add_by_path(page, one)
    page.locator("#open-added").click()
    page.locator("#strip a.ov-frame").first.wait_for(timeout=60_000)
    box, send, stop = page.locator("#message textarea"), page.locator("#send"), page.locator("#stop")
    box.fill(LONG_ANSWER)
    box.press("Enter")
    answer = page.locator('#chat [data-testid="bot"]').last
    page.wait_for_function("() => { const b = document.querySelectorAll('#chat [data-testid=\"bot\"]');"
                           " return b.length && b[b.length - 1].innerText.trim().length > 40; }", timeout=60_000)
    # while it streams, a second message is refused visibly: the box is off and says why; Stop replaces Send
    assert box.is_disabled()
    page.wait_for_function("() => document.querySelector('#message textarea').placeholder.includes('press Stop')",
                           timeout=5_000)
    assert stop.is_visible() and send.is_hidden()
    assert page.locator("#chat .ov-details").count() == 0      # still streaming

    t0 = time.monotonic()
    stop.click()
    page.locator("#chat .ov-details").get_by_text("stopped by you").wait_for(timeout=5_000)
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0, f"Stop took {elapsed:.2f} s"
    text = answer.inner_text()
    time.sleep(0.5)
    assert answer.inner_text() == text                          # it ended: nothing more arrives
    send.wait_for(timeout=5_000)
    expect(box).to_be_enabled(timeout=5_000)
    expect(stop).to_be_hidden(timeout=5_000)

    set_answer_length(page, 16)
    page.get_by_role("tab", name="Chat").click()
    box.fill("And what comes next?")
    send.click()
    page.locator("#chat .ov-details").nth(1).wait_for(timeout=60_000)        # answered, from the stopped turn on
    follow_up = page.locator("#chat .ov-details").nth(1).inner_text()
    assert "cache hit" in follow_up and "tokens generated" in follow_up and "stopped" not in follow_up
    page.get_by_role("tab", name="Sessions").click()
    page.locator("#sessions").get_by_text(LONG_ANSWER).filter(visible=True).first.wait_for(timeout=10_000)
    cells = [c.strip() for c in page.locator("#sessions").inner_text().splitlines() if c.strip()]
    title = cells.index(LONG_ANSWER)                            # then video, model, messages, updated
    assert cells[title + 1:title + 4] == ["one.mp4", "tiny", "4"]   # two questions, two answers stored


def test_ingest_progress_is_drawn_once_in_the_estimates_units(page, served):
    _, _, (*_, forty) = served
    page.locator(PATH_BOX).first.fill(str(forty))
    page.locator(PATH_BOX).first.press("Enter")
    plan = page.locator("#plan")
    plan.get_by_text("visual tokens").wait_for(timeout=30_000)
    frames, tokens = (re.search(r"Sampling: (\d+) frames .* → ([\d,]+) visual tokens", plan.inner_text()).groups())
    page.evaluate(WATCH_PROGRESS)
    page.get_by_role("button", name="Add to library").click()
    page.wait_for_function("() => window.__progressTexts.size > 0", timeout=30_000)
    expect(page.get_by_role("button", name="Cancel")).to_be_enabled(timeout=10_000)   # something to cancel now
    status = page.locator("#library-status")
    status.get_by_text("forty.mp4").wait_for(timeout=120_000)
    # one progress display, on the status line: never over the estimate, the table or the entry list
    assert page.evaluate("() => [...window.__progressOwners]") == ["library-status"]
    texts = page.evaluate("() => [...window.__progressTexts]")
    counted = {int(m) for t in texts for m in re.findall(r"frames \d+/(\d+)", t)}
    assert counted == {int(frames)}, texts                                 # frames out of the estimate's count
    assert f"Added forty.mp4: {frames} frames, {tokens} visual tokens" in status.inner_text()   # as estimated
    expect(page.get_by_role("button", name="Cancel")).to_be_disabled(timeout=10_000)
