"""The hub's log lines: text for a person, or one JSON object a line for a log collector
(``CALLPOP_LOG_FORMAT=json``). Either way to stderr, where systemd's journal or a container
runtime picks them up. What is logged is filtered before it gets here (no token, no frame
text: ``pipelines/server.py``); the format only changes how a line looks."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

TEXT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
QUIET = ("httpx", "httpcore", "uvicorn.access")  # a line per request: the hub logs its own


class JsonLines(logging.Formatter):
    """One object a line: at (ISO 8601 UTC), level, logger, message, and exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"at": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def setup(level: str, form: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if form == "json" else logging.Formatter(TEXT))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True)
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
