"""structlog, configured once: console on a TTY, JSON lines otherwise.

Standard-library loggers (uvicorn, psycopg, eventsourcing) are routed through the same
processors, and a redaction step keeps secrets and API keys out of every line.
"""

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_FIELDS = frozenset({"authorization", "api_key", "key", "secret", "password", "token"})
_KEY_LIKE = re.compile(r"(clk_[A-Za-z0-9]+_)[A-Za-z0-9_-]+|(whsec_)[A-Za-z0-9+/=_-]+")


def _redact_text(text: str) -> str:
    return _KEY_LIKE.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", text)


def redact_secrets(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name, value in list(event_dict.items()):
        if name.lower() in SECRET_FIELDS:
            event_dict[name] = "[redacted]"
        elif isinstance(value, str):
            event_dict[name] = _redact_text(value)
    return event_dict


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        # Dropped first when below the level: the per-request line then costs no rendering.
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if json_lines else _keep,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log would repeat our canonical request line.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def _keep(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return event_dict
