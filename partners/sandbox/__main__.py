"""``python -m partners.sandbox``: run the sandbox partner until SIGINT/SIGTERM.

Registered clients come from ``--clients-file`` (JSON ``{client_id: secret}``), else the
environment variable ``SANDBOX_CLIENTS`` (same JSON), else ``smarthome`` / ``sandbox-secret``.
Port 0 picks a free port; the one line printed on start tells which. The face photo limit
(``--face-photo-max-bytes``) defaults to the environment's ``FACE_PHOTO_MAX_BYTES`` - the same
variable, and the same default, as the service's - so the sandbox accepts every photo the
service accepts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from partners.face_jwe import DEFAULT_FACE_PHOTO_MAX_BYTES

from .oauth import DEFAULT_CLIENTS
from .server import SandboxConfig, SandboxServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m partners.sandbox",
        description="Run the sandbox partner (HTTPS + mTLS) and its control API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="partner API address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8443, help="partner API port, HTTPS + mTLS")
    parser.add_argument(
        "--control-port", type=int, default=8444, help="control API port (plain HTTP, loopback)"
    )
    parser.add_argument("--certs-dir", type=Path, default=Path("var/certs"), help="output of make_dev_certs")
    parser.add_argument("--token-ttl", type=int, default=300, help="access token lifetime in seconds")
    parser.add_argument("--clients-file", type=Path, help="JSON {client_id: secret}")
    parser.add_argument(
        "--face-photo-max-bytes", type=int,
        help="largest face photo accepted (default: $FACE_PHOTO_MAX_BYTES, else the service's default)",
    )
    args = parser.parse_args(argv)

    try:
        clients = load_clients(args.clients_file, os.environ.get("SANDBOX_CLIENTS"))
        face_photo_max_bytes = (args.face_photo_max_bytes if args.face_photo_max_bytes is not None
                                else face_photo_limit(os.environ.get("FACE_PHOTO_MAX_BYTES")))
        server = SandboxServer(
            SandboxConfig(
                certs_dir=args.certs_dir,
                clients=clients,
                host=args.host,
                port=args.port,
                control_port=args.control_port,
                token_ttl_s=args.token_ttl,
                face_photo_max_bytes=face_photo_max_bytes,
            )
        )
        server.start()
    except (OSError, ValueError) as error:
        print(f"sandbox partner: cannot start: {error}", file=sys.stderr)
        return 2

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"sandbox partner listening on {server.base_url} (control {server.control_url})", flush=True)
    stop.wait()
    server.stop()
    return 0


def load_clients(clients_file: Path | None, env_value: str | None) -> dict[str, str]:
    """Client id -> secret, from the file, else the environment's JSON, else the default client."""
    if clients_file is not None:
        source, text = str(clients_file), clients_file.read_text()
    elif env_value:
        source, text = "SANDBOX_CLIENTS", env_value
    else:
        return dict(DEFAULT_CLIENTS)
    try:
        clients = json.loads(text)
    except ValueError:
        raise ValueError(f"{source} is not valid JSON") from None
    if not (
        isinstance(clients, dict)
        and clients
        and all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in clients.items())
    ):
        raise ValueError(f"{source} must be a non-empty JSON object of client id -> secret strings")
    return clients


def face_photo_limit(env_value: str | None) -> int:
    """The service's FACE_PHOTO_MAX_BYTES as the environment sets it, else its default."""
    if not env_value:
        return DEFAULT_FACE_PHOTO_MAX_BYTES
    try:
        return int(env_value)
    except ValueError:
        raise ValueError("FACE_PHOTO_MAX_BYTES is not a number of bytes") from None


if __name__ == "__main__":
    sys.exit(main())
