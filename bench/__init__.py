"""Reproducible benchmarks that print figures and their ratios to baselines measured in the
same run. Run `python -m bench --help`."""
