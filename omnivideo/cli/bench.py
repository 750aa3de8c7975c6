"""`bench ...`: the benchmarks' click group (omnivideo/bench/cli.py), added to the command line."""


def register(cli, **_):
    from omnivideo.bench.cli import bench

    cli.add_command(bench)
