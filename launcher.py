"""OmniVideo command line, run from a checkout: `python launcher.py ask match.mp4 "Who scores first?"`.

The same CLI as the installed `omnivideo` command (omnivideo/cli/main.py).
"""
from omnivideo.cli.main import cli

if __name__ == "__main__":
    cli()
