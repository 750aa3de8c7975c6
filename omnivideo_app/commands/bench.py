"""`bench ...`: benchmarks that write JSON + a report with a plot under docs/benchmarks/."""
import click


def register(cli, *, model_options, build_config):
    @cli.group()
    def bench():
        """Benchmarks (GPU for real numbers); each writes JSON + report + plot under docs/benchmarks/.

        Example: python launcher.py bench video --out docs/benchmarks/video
        """
