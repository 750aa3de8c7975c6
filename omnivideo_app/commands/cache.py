"""`cache ls|rm|gc|verify`: inspect and maintain the persistent video KV cache."""
import click

from omnivideo_app.errors import OmniVideoError


def register(cli, *, model_options, build_config):
    @cli.group()
    def cache():
        """Inspect and maintain the persistent video KV cache.

        Example: python launcher.py cache ls --json
        """

    for name, doc in (("ls", "List cached videos (video, model, tokens, size, last used)."),
                      ("rm", "Remove cache entries."), ("gc", "Evict entries over the disk budget, clean leftovers."),
                      ("verify", "Check every stored file's checksum and find orphans.")):
        def command(json_out, _name=name):
            raise OmniVideoError(f"'cache {_name}' needs the persistent KV store, not in this build yet (issue 6)")
        command.__doc__ = doc
        cache.command(name)(click.option("--json", "json_out", is_flag=True)(command))
