"""What the page shows: planner estimate, answer details, library and session tables, progress lines,
status notices and the frame strip."""
import base64
import io
import re

import numpy as np
import pytest
from PIL import Image
from ui_testkit import make_h264

from omnivideo.errors import VideoCancelled, VideoError
from omnivideo.ui.messages import error_notice, notice
from omnivideo.ui.strip import EMPTY_STRIP, THUMB_WIDTH, strip_html

from omnivideo.ui.progress import StageProgress, format_eta
from omnivideo.ui.summaries import (answer_details, format_bytes, frame_caption, library_choices, library_rows, plan_summary,
                          session_choices, session_rows)

NOW = 1_800_000_000.0

PLAN = {  # App.plan() for a 12.5-minute 720p video on an 8 GiB GPU, as probe_report returns it
    "path": "/videos/match.mp4", "duration_s": 750.0, "fps": 29.97, "frame_count": 22477, "width": 1280,
    "height": 720, "codec": "h264", "rotation": 0,
    "sampled": {"count": 768, "timestamps_s": [0.0, 0.98], "resized_height": 420, "resized_width": 756},
    "visual_tokens": 155_520, "model": "Qwen/Qwen2.5-VL-7B-Instruct", "attention": "balanced",
    "kv_bytes_per_token": 57344, "kv_bytes": 8_918_138_880, "weights_bytes": 5 << 30, "activation_bytes": 1 << 28,
    "runtime_bytes": 768 << 20, "gpu_estimate_bytes": 15 << 30, "decode_kv_bytes": 3 << 30,
    "gpu_memory_bytes": 8 << 30, "fits": False,
    "warning": "estimated 15.0 GiB of GPU memory but the GPU has 8.0 GiB: try --max-frames 128 (or --fps 0.17)",
}


def test_plan_summary_shows_the_estimate_and_the_warning():
    text = plan_summary(PLAN)
    assert text.startswith("**match.mp4**: 12:30 · 1280×720 h264 · 30 fps")
    assert "768 frames at 756×420 → **155,520 visual tokens**" in text
    assert "KV cache 8.3 GiB · estimated GPU 15.0 GiB of 8.0 GiB" in text
    assert text.endswith("⚠️ **Will not fit: " + PLAN["warning"] + "**")


def test_plan_summary_without_gpu_and_fitting():
    no_gpu = dict(PLAN, gpu_memory_bytes=None, fits=None, warning=None)
    # no "of (no GPU detected)": an estimate of nothing
    assert "estimated GPU 15.0 GiB (no GPU detected on this machine)" in plan_summary(no_gpu)
    assert " of " not in plan_summary(no_gpu).splitlines()[-1] and "⚠️" not in plan_summary(no_gpu)
    assert plan_summary(dict(PLAN, fits=True, warning=None)).endswith("✅ Fits on this GPU.")


def test_plan_summary_of_a_real_probe(tmp_path):
    """The real planner's dict (ffmpeg-made H.264 clip) has every key the summary reads."""
    from omnivideo.app.video import SamplingConfig, probe_report

    clip = make_h264(tmp_path / "clip.mp4", seconds=3, size="160x120")
    report = probe_report(clip, SamplingConfig(fps=2.0), model="tiny", gpu_memory_bytes=None)
    text = plan_summary(report)
    assert text.startswith("**clip.mp4**: 00:03 · 160×120 h264 · 10 fps")
    assert f"{report['sampled']['count']} frames" in text and f"**{report['visual_tokens']:,} visual tokens**" in text


def test_answer_details():
    result = {"answer": "x", "attention": "fast", "cache_hit": True,
              "timings": {"ttft_s": 0.4249, "total_s": 3.8}, "tokens": {"visual": 840, "prompt": 905, "generated": 48,
                                                                        "reused": 892}}
    assert answer_details(result) == ("cache hit · TTFT 0.42 s · 892 tokens reused · attention fast · "
                                      "48 tokens generated · total 3.80 s")
    assert answer_details(dict(result, cache_hit=False)).startswith("cache miss (video ingested) · TTFT")
    # why it ended, when the model did not end it itself
    assert answer_details(dict(result, stop_reason="stopped")).endswith("total 3.80 s · stopped by you")
    assert answer_details(dict(result, stop_reason="length")).endswith("· cut at the answer length (Settings)")
    assert answer_details(dict(result, stop_reason="stop")) == answer_details(result)


LIBRARY = [{"entry_id": "7e24e40f0e7cadbd-cb9a0d92", "video_path": "/data/videos/clip.mp4", "model_id": "tiny",
            "attention_preset": "dense", "num_tokens": 892, "nbytes": 456992, "last_used_at": NOW - 30,
            "duration_s": None, "num_visual_tokens": None,
            "sampling": {"fps": 2.0, "nframes": None, "max_frames": 768}},
           {"entry_id": "aa11bb22cc33dd44-00000000", "video_path": "/v/talk.mkv", "model_id": "tiny",
            "attention_preset": "fast", "num_tokens": 10, "nbytes": 3 << 30, "last_used_at": NOW - 7200,
            "duration_s": 3725.0, "num_visual_tokens": 21504,
            "sampling": {"fps": None, "nframes": 16, "max_frames": 768}}]


def test_library_rows_and_choices():
    assert library_rows(LIBRARY, NOW) == [
        ["clip.mp4", "—", "tiny", "dense", "2 fps, ≤768 frames", "—", "446.3 KiB", "30 s ago", "7e24e40f0e7c"],
        ["talk.mkv", "1:02:05", "tiny", "fast", "16 frames", "21,504", "3.0 GiB", "2.0 h ago", "aa11bb22cc33"]]
    assert library_choices(LIBRARY)[1] == ("talk.mkv · tiny · fast · 16 frames · aa11bb22", "aa11bb22cc33dd44-00000000")


def test_session_rows_and_choices():
    sessions = [{"id": "s1", "title": "Who scores?", "video_path": "/v/match.mp4", "model_id": "tiny",
                 "num_messages": 4, "updated_at": NOW - 600}, {"id": "s2", "title": "", "video_path": None}]
    assert session_rows(sessions, NOW) == [["Who scores?", "match.mp4", "tiny", 4, "10 min ago"],
                                           ["(untitled)", "?", "?", 0, "—"]]
    assert session_choices(sessions, NOW)[0] == ("Who scores? · match.mp4 · 10 min ago", "s1")


@pytest.mark.parametrize("n, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 << 20, "5.0 MiB"),
                                     (None, "unknown")])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


def test_frame_caption():
    assert frame_caption(4.3, precise=True) == "00:04.3"          # 4.3 is 4.29999... in binary
    assert frame_caption(3.8000000000000003, precise=True) == "00:03.8"
    assert frame_caption(65.96, precise=True) == "01:06.0"
    assert frame_caption(65.6, precise=False) == "01:06"


@pytest.mark.parametrize("s, text", [(0, "0 s"), (3.2, "4 s"), (59.5, "1 min 00 s"), (95, "1 min 35 s"),
                                     (4000, "1 h 06 min")])
def test_format_eta(s, text):
    assert format_eta(s) == text


def test_stage_progress_eta_is_per_stage():
    now = [100.0]
    seen = []
    bar = StageProgress(lambda fraction, text: seen.append((fraction, text)), clock=lambda: now[0])
    bar(0, 40, "sample")
    now[0] += 10
    bar(10, 40, "sample")              # 1 frame/s so far: 30 left
    now[0] += 2
    bar(1, 4, "prefill")               # a new stage starts its own clock: no rate yet
    now[0] += 2
    bar(2, 4, "prefill")               # 2 chunks in the stage's 2 s: 2 left
    bar(4, 4, "prefill")
    bar(1, 1, "load")
    assert [t for _, t in seen] == ["decoding frames 0/40", "decoding frames 10/40 · ETA 30 s",
                                    "prefill 1/4 tokens (video + prompt)", "prefill 2/4 tokens (video + prompt) · ETA 2 s",
                                    "prefill 4/4 tokens (video + prompt)", "loading from the cache 1/1"]
    assert [f for f, _ in seen] == [0.0, 0.25, 0.25, 0.5, 1.0, 1.0]
    assert bar.stages_seen == ["sample", "prefill", "load"]


def test_stage_progress_follows_an_interleaved_pipeline():
    now = [0.0]
    seen = []
    bar = StageProgress(lambda fraction, text: seen.append((fraction, text)), clock=lambda: now[0])
    bar(0, 96, "decode")
    now[0] += 4
    bar(48, 96, "decode")              # 12 frames/s: 4 s left
    now[0] += 0.5
    bar(0, 8, "vision")
    now[0] += 0.5
    bar(2, 8, "vision")                # its own clock: 2 chunks in 0.5 s; decode still running
    now[0] += 0.5
    bar(60, 96, "decode")              # back to decode: its clock was not reset by vision
    now[0] += 5
    bar(8, 8, "vision")                # decode last heard 5 s ago: finished as far as the page knows
    # the vision stage's 8 groups are shown as the 96 frames the decode stage (and the planner) count
    assert [t for _, t in seen] == [
        "decoding frames 0/96", "decoding frames 48/96 · ETA 4 s", "encoding frames 0/96 | decoding frames 48/96",
        "encoding frames 24/96 · ETA 2 s | decoding frames 48/96",
        "decoding frames 60/96 · ETA 4 s | encoding frames 24/96", "encoding frames 96/96"]
    assert [f for f, _ in seen] == [0.0, 0.5, 0.0, 0.25, 0.25, 1.0]


def test_stage_progress_counts_match_the_estimate():
    """A real ingest's reports (the tiny model, a 12-frame clip): frames out of the planner's 12, and the
    prefill's tokens named as video + prompt (the estimate's 840 visual tokens are part of its 892)."""
    seen = []
    bar = StageProgress(lambda fraction, text: seen.append(text), clock=lambda: 0.0)
    for report in [(0, 12, "decode"), (12, 12, "decode"), (3, 6, "vision"), (6, 6, "vision"),
                   (892, 892, "prefill"), (2, 2, "store")]:
        bar(*report)
    assert seen[2:] == ["encoding frames 6/12", "encoding frames 12/12", "prefill 892/892 tokens (video + prompt)",
                        "storing the KV cache 2/2 layers"]


def test_notices_look_like_what_happened():
    assert notice("Added **a.mp4**.", "ok") == '<div class="ov-notice ov-ok" role="status">\n\nAdded **a.mp4**.\n\n</div>'
    assert 'class="ov-notice ov-error" role="alert"' in error_notice(VideoError("video not found: /x.mp4"))
    assert "Error: video not found: /x.mp4" in error_notice(VideoError("video not found: /x.mp4"))
    assert "ov-info" in error_notice(VideoCancelled("cancelled")) and notice("", "error") == ""


def test_strip_html_links_every_frame_to_its_time():
    frames = [(np.full((280, 392, 3), 10 * i, np.uint8), f"00:0{i}.5") for i in range(3)]
    html = strip_html(frames, [0.5, 1.5, 2.5])
    assert re.findall(r'href="(#t=[^"]+)"', html) == ["#t=0.5", "#t=1.5", "#t=2.5"]
    assert html.count('alt="Frame at 00:0') == 3 and html.count("<span>00:0") == 3
    thumb = re.search(r'src="data:image/jpeg;base64,([^"]+)"', html).group(1)
    assert Image.open(io.BytesIO(base64.b64decode(thumb))).size == (THUMB_WIDTH, round(280 * THUMB_WIDTH / 392))
    assert strip_html([], []) == EMPTY_STRIP
