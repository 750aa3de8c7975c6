"""Synthetic long videos whose answers are known: scenes from a seed, frames, files, questions, scoring.

    spec = make_spec(seed=7, duration_s=120)          # the scene (scene.py)
    frame = render_frame(spec, 12.5)                   # uint8 [448, 448, 3] RGB (render.py)
    write_video(spec, "clip.mp4")                      # H.264 via ffmpeg, else mp4v (writer.py)
    for q in make_questions(spec):                     # needle / count / order / grounding
        assert score(q, q.answer)
"""
from omnivideo.synth.questions import Question, format_clock, make_questions
from omnivideo.synth.render import render_frame, render_frames
from omnivideo.synth.scene import Event, VideoSpec, make_spec
from omnivideo.synth.score import score
from omnivideo.synth.writer import WrittenVideo, write_video

__all__ = ["Event", "Question", "VideoSpec", "WrittenVideo", "format_clock", "make_questions", "make_spec",
           "render_frame", "render_frames", "score", "write_video"]
