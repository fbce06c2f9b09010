"""`chipledger demo`: the story of api/cli/story.py, recorded and shown."""

from api.cli.app import _start, _startup, cli, out
from infra.runner import LeaderStalledError


@cli.command()
def demo() -> None:
    """Record the 2022-2025 export-control story and print each firm's posture over time."""
    from api.cli.story import run_demo

    container = _start()
    try:
        with _startup(LeaderStalledError):
            run_demo(container, out)
    finally:
        container.close()
