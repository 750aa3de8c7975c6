"""Serving the app: build the page for an App and listen (omnivideo/ui/access.py says who may connect).

    options = ServeOptions.from_cli(host="0.0.0.0", port=7860, auth="me:secret", share=False)
    launch(App(cfg), options)          # blocks until Ctrl-C
"""
from omnivideo.errors import ConfigError
from omnivideo.ui.access import FileAccess, ServeOptions
from omnivideo.ui.app import build_demo
from omnivideo.ui.styles import CSS


def launch(app, options: ServeOptions, *, max_new_tokens: int = 256, block: bool = True, quiet: bool = False):
    """Build the page for `app` and serve it; returns (demo, url) when `block` is False."""
    access = FileAccess(app.config.data_dir)
    access.use_upload_dir()
    access.videos_dir.mkdir(parents=True, exist_ok=True)
    for item in app.library():
        if item.get("video_path"):
            access.allow(item["video_path"])
    demo = build_demo(app, access, max_new_tokens=max_new_tokens)
    demo.queue(default_concurrency_limit=4)
    try:
        _, url, _ = demo.launch(server_name=options.host, server_port=options.port, auth=options.auth,
                                share=options.share, allowed_paths=access.paths, blocked_paths=access.blocked,
                                prevent_thread_lock=not block, show_error=True, ssr_mode=False, quiet=quiet,
                                footer_links=["settings"], css=CSS)
    except OSError as e:
        raise ConfigError(f"cannot listen on {options.host}:{options.port}: {e}") from e
    return demo, url
