"""`serve`: the Gradio app in the browser."""
import click

from omnivideo_app.errors import OmniVideoError


def register(cli, *, model_options, build_config):
    @cli.command()
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", type=int, default=7860, show_default=True)
    @model_options
    @click.pass_context
    def serve(ctx, host, port, **model_kw):
        """Start the browser app (Gradio) on HOST:PORT.

        Example: python launcher.py serve --model tiny --port 7860
        """
        build_config(ctx, **model_kw)
        raise OmniVideoError("'serve' (the browser app) is not in this build yet (issue 8)")
