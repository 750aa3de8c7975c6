"""CLI commands beyond ask/chat/probe/demo, one module per command group.

`launcher.py` calls `register_commands(cli, ...)`; each module adds its click commands to the group
and takes the shared option decorators from it, so options stay identical across commands.
"""
from omnivideo_app.commands import bench, cache, ingest, serve


def register_commands(cli, *, model_options, build_config) -> None:
    for module in (ingest, serve, cache, bench):
        module.register(cli, model_options=model_options, build_config=build_config)
