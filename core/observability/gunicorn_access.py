"""gunicorn's access log as one JSON object per line, with the path only - never the query string.

gunicorn's own access-log format interpolates values into a template without escaping, so a
path with a quote in it breaks a JSON template; this logger builds the object and dumps it.
Django-free: gunicorn loads it before the application (`logger_class` in gunicorn.conf.py).
"""

import datetime
import json

from gunicorn.glogging import Logger


class JsonAccessLogger(Logger):
    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        line = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(),
            "level": "INFO",
            "logger": "gunicorn.access",
            "method": atoms["m"],
            "path": atoms["U"],  # PATH_INFO: the query string is QUERY_STRING, never written
            "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
            "bytes": atoms["B"],
            "duration_ms": atoms["M"],
            "request_id": atoms.get("{x-request-id}o", "-"),
        }
        self.access_log.info(json.dumps(line, ensure_ascii=False))
