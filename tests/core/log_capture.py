"""Capture what the configured JSON log handler would write, through the same filters."""

import io
import json
import logging
from contextlib import contextmanager

from core.observability.logging import JsonFormatter, RedactingFilter, RequestIdFilter


@contextmanager
def captured_json_logs(level=logging.DEBUG):
    """Yields a list that fills with the parsed JSON lines written while the block runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    handler.setLevel(level)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines() if line.strip())
        lines.append({"_raw": stream.getvalue()})
