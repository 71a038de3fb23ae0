"""Logging for the command line: `--log-level LEVEL` and `--log-format text|json` (to stderr).

JSON is one object a line with `time` (UTC, ISO 8601), `level`, `logger` and `message` (and
`exception` when there is one); every message is passed through the DSN redaction first.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Final

from coherence_sql.redaction import redact_text

LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def configure_logging(level: str = "WARNING", log_format: str = "text") -> logging.Handler:
    """Send the root logger's records at `level` and above to stderr in `log_format`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else _RedactingFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "coherence_sql", False):
            root.removeHandler(old)
    handler.coherence_sql = True  # type: ignore[attr-defined]  # ours to replace on the next call
    root.addHandler(handler)
    root.setLevel(level)
    return handler
