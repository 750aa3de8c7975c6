"""`ingest VIDEO...`: decode, encode and prefill videos ahead of questions, into the persistent cache."""
from pathlib import Path

import click

from omnivideo.cli.console import Progress, print_json


def register(cli, *, model_options, build_config):
    @cli.command()
    @click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path))
    @model_options
    @click.option("--json", "json_out", is_flag=True, help="Print one JSON object per video.")
    @click.pass_context
    def ingest(ctx, videos, json_out, **model_kw):
        """Pre-ingest VIDEOS into the persistent KV cache, with progress; later questions load it.

        Example: python launcher.py ingest lecture.mp4 match.mkv --fps 1
        """
        from omnivideo.app.app import App

        app = App(build_config(ctx, **model_kw))
        report = []
        for video in videos:
            progress = Progress()
            opened = app.ingest(video, progress=progress)
            progress.close()
            item = {"video": str(video), "entry_id": opened.entry_id, "cache_hit": opened.cache_hit,
                    "visual_tokens": opened.visual_tokens, "prefix_tokens": opened.prefix_tokens,
                    "timings": {k: round(v, 4) for k, v in opened.timings.items()}}
            report.append(item)
            if not json_out:
                what = "already cached" if opened.cache_hit else "ingested"
                click.echo(f"{video}: {what} ({opened.visual_tokens} visual tokens, entry {opened.entry_id[:8]})")
        if json_out:
            print_json(report)
