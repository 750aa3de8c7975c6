"""`python -m omnivideo ...`: the command line without the installed `omnivideo` script (a bare checkout)."""
from omnivideo.cli.main import cli

cli()
