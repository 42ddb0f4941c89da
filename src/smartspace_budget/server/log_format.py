"""How the service writes its logs: JSON lines or text, for uvicorn and the package alike.

``serve --log-format json`` writes one JSON object per line (``time``, ``level``,
``logger``, ``message``, the request's fields from ``request_log.py``, and ``exc_info`` for
an error), which log shippers parse without rules; ``text`` (the default) is for a
terminal. :func:`log_config` is handed to uvicorn, which applies it in every worker.

uvicorn's own access log is off (``request_log.py`` writes a richer line per request),
and its "Exception in ASGI application" line is dropped: the service has already logged
that error with its request id.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["DropDuplicateErrors", "JsonFormatter", "LogFormat", "TextFormatter", "log_config"]

LogFormat = Literal["json", "text"]

_UVICORN_DUPLICATE = "Exception in ASGI application"


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "request", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """A record as a line for people: time, level, logger, message, then ``key=value``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "request", None)
        if not isinstance(fields, dict):
            return text
        head, _, rest = text.partition("\n")  # a traceback, if any, stays below the line
        pairs = " ".join(f"{name}={value}" for name, value in fields.items())
        return f"{head} {pairs}" + (f"\n{rest}" if rest else "")


class DropDuplicateErrors(logging.Filter):
    """Drop uvicorn's own line for an error the service logged already."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn writes it with a trailing newline.
        duplicate = str(record.msg).strip() == _UVICORN_DUPLICATE
        return not (duplicate and record.name.startswith("uvicorn"))


def log_config(log_format: LogFormat, level: str = "info") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for uvicorn's ``log_config``: every logger of
    the server (uvicorn's and the package's) to stderr in ``log_format``."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"service": {"()": f"{__name__}.{formatter.__name__}"}},
        "filters": {"no_duplicates": {"()": f"{__name__}.{DropDuplicateErrors.__name__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "service",
                "filters": ["no_duplicates"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "smartspace_budget": {"handlers": ["stderr"], "level": upper, "propagate": False},
        },
    }
