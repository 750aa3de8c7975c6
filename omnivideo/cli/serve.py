"""`serve`: the Gradio app in the browser (omnivideo/ui/), on this machine unless a password is given."""
import click


def register(cli, *, model_options, build_config):
    @cli.command()
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Interface to listen on; anything but this machine needs --auth.")
    @click.option("--port", type=int, default=7860, show_default=True)
    @click.option("--auth", default=None, metavar="USER:PASSWORD",
                  help="Require this login (needed with --host 0.0.0.0 or --share).")
    @click.option("--share", is_flag=True, help="Also open a public gradio.live link (needs --auth).")
    @click.option("--max-new-tokens", type=int, default=256, show_default=True,
                  help="Answer length limit (changeable in the Settings tab).")
    @model_options
    @click.pass_context
    def serve(ctx, host, port, auth, share, max_new_tokens, **model_kw):
        """Start the browser app (Gradio) on HOST:PORT: video library, streaming chat, sessions.

        Example: python launcher.py serve --model tiny --port 7860
        """
        from omnivideo.app.app import App
        from omnivideo.ui.access import ServeOptions
        from omnivideo.ui.server import launch

        options = ServeOptions.from_cli(host=host, port=port, auth=auth, share=share)  # refuses before any work
        app = App(build_config(ctx, **model_kw))
        click.echo(f"OmniVideo on http://{host}:{port} (model {app.config.model}, data {app.config.data_dir}); "
                   "Ctrl-C stops it.", err=True)
        try:
            launch(app, options, max_new_tokens=max_new_tokens)
        finally:
            app.close()
