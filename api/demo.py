"""Kept so `from api.demo import story` goes on working: the demo story is api/cli/story.py."""

from api.cli.story import DEMO_FIRMS, record_story, run_demo, story

__all__ = ["DEMO_FIRMS", "record_story", "run_demo", "story"]
