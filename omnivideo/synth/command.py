"""`synth make OUT.mp4 --seed S`: write a synthetic video and print its questions with their answers.

    omnivideo synth make clip.mp4 --seed 7 --minutes 2 --json

Wired into the CLI by `register(cli)` (the same hook as omnivideo/cli/ingest.py); user errors are
ConfigErrors, which the CLI group prints as one `error:` line with exit code 2.
"""
import json
import math

import click

from omnivideo.errors import ConfigError


def make_video(out, seed: int, minutes: float | None = None, seconds: float | None = None, fps: float = 10.0,
               codec: str = "auto", size: int = 448) -> dict:
    """Write the video of `seed` to `out` and return the report `synth make --json` prints."""
    from omnivideo.synth.questions import make_questions
    from omnivideo.synth.scene import make_spec
    from omnivideo.synth.writer import write_video

    if minutes is not None and seconds is not None:
        raise ConfigError("give --minutes or --seconds, not both")
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        raise ConfigError(f"--minutes must be a positive number, got {minutes}")
    duration = minutes * 60 if minutes is not None else (seconds if seconds is not None else 60.0)
    spec = make_spec(seed, duration, size=size)
    written = write_video(spec, out, fps=fps, codec=codec)
    return {"video": str(written.path), "seed": seed, "duration_s": spec.duration_s, "fps": written.fps,
            "frames": written.frames, "size": [spec.size, spec.size], "codec": written.codec,
            "events": [{"shape": e.shape, "colour": e.colour, "start_s": e.start_s, "end_s": e.end_s}
                       for e in spec.events],
            "questions": [q.as_dict() for q in make_questions(spec)]}


def register(cli, **_):
    """Add the `synth` group (with `make`) to the click group `cli`."""
    @cli.group()
    def synth():
        """Synthetic videos with known answers (for training and accuracy checks)."""

    @synth.command()
    @click.argument("out", type=click.Path(dir_okay=False))
    @click.option("--seed", type=int, required=True, help="Seed: the same seed gives the same video.")
    @click.option("--minutes", type=float, default=None, help="Length in minutes (default 1; under 60).")
    @click.option("--seconds", type=float, default=None, help="Length in seconds, instead of --minutes.")
    @click.option("--fps", type=float, default=10.0, show_default=True, help="Frame rate of the file.")
    @click.option("--codec", type=click.Choice(["auto", "h264", "mp4v"]), default="auto", show_default=True,
                  help="auto = H.264 through ffmpeg when it is on PATH, else OpenCV's mp4v.")
    @click.option("--json", "json_out", is_flag=True, help="Print one JSON object.")
    def make(out, seed, minutes, seconds, fps, codec, json_out):
        """Write a synthetic video to OUT and print its questions and answers.

        Example: python launcher.py synth make clip.mp4 --seed 7 --minutes 2 --json
        """
        report = make_video(out, seed, minutes=minutes, seconds=seconds, fps=fps, codec=codec)
        if json_out:
            click.echo(json.dumps(report, indent=2))
            return
        click.echo(f"{report['video']}: {report['duration_s']} s, {report['frames']} frames, {report['codec']}")
        for q in report["questions"]:
            click.echo(f"[{q['kind']}] {q['question']} -> {q['answer']}")
