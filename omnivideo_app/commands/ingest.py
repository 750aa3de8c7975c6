"""`ingest VIDEO...`: decode, encode and prefill videos ahead of questions, into the persistent cache."""
from pathlib import Path

import click

from omnivideo_app.errors import OmniVideoError


def register(cli, *, model_options, build_config):
    @cli.command()
    @click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path))
    @model_options
    @click.pass_context
    def ingest(ctx, videos, **model_kw):
        """Pre-ingest VIDEOS into the persistent KV cache, with progress.

        Example: python launcher.py ingest lecture.mp4 match.mkv --fps 1
        """
        build_config(ctx, **model_kw)  # validates the options before anything else
        raise OmniVideoError("'ingest' needs the persistent KV store, which this build does not have yet (issue 6)")
