"""The command line (click): `omnivideo` / `python launcher.py`; one module per command group."""
