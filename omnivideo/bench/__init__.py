"""Benchmarks and fidelity measurements (`omnivideo bench ...`): one click group (cli.py), one runner and
report writer (runner.py), a folder per area; every run writes JSON + report.md + a plot."""
