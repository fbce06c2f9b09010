"""The `chipledger` command line: the same contract as the HTTP API. One module per command
group; importing this package registers them all, in the order `--help` lists them."""

# isort: off
from api.cli import serve, projections, demo, verify, transfer, proofs, keys  # noqa: F401 - registers
# isort: on
from api.cli.app import EXIT_FAILED_SUBJECTS, cli, main
from api.cli.serve import api_process_app

__all__ = ["EXIT_FAILED_SUBJECTS", "api_process_app", "cli", "main"]
