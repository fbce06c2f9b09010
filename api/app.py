"""Kept so `from api.app import create_app` (tests, the CLI, deployments) goes on working:
the app factory is api/main.py."""

from api.main import create_app, wire

__all__ = ["create_app", "wire"]
