"""The HTTP API (FastAPI) and the command line (typer)."""
