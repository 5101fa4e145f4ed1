"""`make run`: prepare a one-machine demo and run every process until Ctrl-C.

Migrates and generates dev certificates and keys; starts the sandbox partner and waits until it
answers, so the demo's first deliveries (seeded allowlists) reach it at once instead of opening
the breaker; seeds the demo; starts the two web worker pools (public and partner, each its own
process: smarthome/settings/pools.py) and nginx in front of them and waits for them; links the
sandbox (`manage.py link_sandbox`: registers the demo devices there and has the sandbox report
them online through our partner API); starts the background work (an in-process scheduler
without REDIS_URL, a Celery worker + beat with it) and prints where everything is. Ctrl-C (or
SIGTERM) stops all of them. tests/e2e/test_make_run.py runs it.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import nginx  # noqa: E402  (Django-free; needs the project root on sys.path)

PYTHON = sys.executable
WEB_PORT = int(os.environ.get("SMARTHOME_WEB_PORT", "8000"))
PARTNER_WEB_PORT = int(os.environ.get("SMARTHOME_PARTNER_WEB_PORT", "8001"))
SANDBOX_PORT = int(os.environ.get("SANDBOX_PORT", "8443"))
SANDBOX_CONTROL_PORT = int(os.environ.get("SANDBOX_CONTROL_PORT", "8444"))
PUBLIC_TLS_PORT = int(os.environ.get("SMARTHOME_TLS_PORT", "9443"))
PARTNER_TLS_PORT = int(os.environ.get("SMARTHOME_PARTNER_TLS_PORT", "9444"))


def var_dir_of(certs_dir: Path) -> Path:
    return certs_dir.parent


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def has_command(name: str) -> bool:
    return any(
        (ROOT / app / "management" / "commands" / f"{name}.py").exists()
        for app in ("core", "access", "consent", "partners", "audit")
    )


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smarthome.settings")
    # nginx on this machine is the TLS terminator whose X-Client-Cert the service believes - over
    # loopback TCP only with the proxy secret it adds (a fresh one each run; core/http/proxy.py).
    os.environ.setdefault("TRUSTED_PROXY_CIDRS", "127.0.0.1/32")
    os.environ.setdefault("PROXY_AUTH_SECRET", secrets.token_urlsafe(32))
    # The issuer in authorisation responses (RFC 9207 `iss`): the public origin the app talks to.
    os.environ.setdefault("OAUTH_ISSUER_URL", f"https://localhost:{PUBLIC_TLS_PORT}")
    var_dir = Path(os.environ.setdefault("SMARTHOME_VAR_DIR", str(ROOT / "var")))
    var_dir.mkdir(parents=True, exist_ok=True)
    certs_dir = var_dir / "certs"

    print("==> migrating", flush=True)
    manage("migrate", "--no-input", "-v", "0")
    manage("createcachetable")
    if has_command("make_dev_certs"):
        manage("make_dev_certs", "--out", str(certs_dir))

    processes: list[tuple[str, subprocess.Popen]] = []
    try:
        return supervise(processes, certs_dir)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM while starting up
        print("\n==> stopping", flush=True)
        return 0
    finally:
        stop_all(processes)


def wait_until(what: str, ready, timeout_s: float = 60) -> bool:
    """Poll `ready()` until it is true; False (and a line saying so) after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if ready():
                return True
        except OSError:
            pass
        time.sleep(0.2)
    print(f"==> {what} did not come up within {timeout_s:.0f} s", flush=True)
    return False


def answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback ports
        return response.status == 200


def listens(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return True


def stop_all(processes: list[tuple[str, subprocess.Popen]]) -> None:
    for _, process in processes:
        if process.poll() is None:
            process.terminate()
    for _, process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def supervise(processes: list[tuple[str, subprocess.Popen]], certs_dir: Path) -> int:
    def start(name: str, args: list[str], **env: str) -> None:
        processes.append((name, subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env} if env else None)))

    def interrupted(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # from here on, SIGTERM stops what was started

    if (ROOT / "partners" / "sandbox" / "__main__.py").exists():
        start(
            "sandbox partner",
            [
                PYTHON, "-m", "partners.sandbox", "--host", "127.0.0.1", "--port", str(SANDBOX_PORT),
                "--control-port", str(SANDBOX_CONTROL_PORT), "--certs-dir", str(certs_dir),
            ],
        )
        # seeding queues the demo's allowlists for the sandbox: it must be there to take them
        wait_until("the sandbox partner", lambda: answers(
            f"http://127.0.0.1:{SANDBOX_CONTROL_PORT}/_control/faults") and listens(SANDBOX_PORT))
    print("==> seeding the demo", flush=True)
    manage("seed_demo")
    # one process per pool, so the sandbox's decisions never queue behind the public side
    start("web (public pool)", [PYTHON, "manage.py", "runserver", f"127.0.0.1:{WEB_PORT}", "--noreload", "--insecure"],
          SMARTHOME_POOL="public")
    start("web (partner pool)", [PYTHON, "manage.py", "runserver", f"127.0.0.1:{PARTNER_WEB_PORT}", "--noreload"],
          SMARTHOME_POOL="partner")
    if (certs_dir / "smarthome-server.pem").exists():
        prefix = var_dir_of(certs_dir) / "nginx"
        conf = subprocess.run(  # the limits of the public listener come from the settings (NGINX_PUBLIC_*)
            [PYTHON, "manage.py", "nginx_config", "--prefix", str(prefix), "--listen-host", "127.0.0.1",
             "--public-upstream", f"127.0.0.1:{WEB_PORT}", "--partner-upstream", f"127.0.0.1:{PARTNER_WEB_PORT}",
             "--public-port", str(PUBLIC_TLS_PORT), "--partner-port", str(PARTNER_TLS_PORT),
             "--server-cert", str(certs_dir / "smarthome-server.pem"),
             "--server-key", str(certs_dir / "smarthome-server.key"), "--partner-ca", str(certs_dir / "ca.pem")],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout.strip()
        processes.append(("nginx (TLS + partner mTLS)", nginx.run(prefix, Path(conf))))
        wait_until("nginx", lambda: listens(PARTNER_TLS_PORT))
    wait_until("the public pool", lambda: answers(f"http://127.0.0.1:{WEB_PORT}/healthz"))
    wait_until("the partner pool", lambda: answers(f"http://127.0.0.1:{PARTNER_WEB_PORT}/healthz"))
    link = subprocess.run(  # the sandbox asks us for decisions and sends events through nginx's mTLS port
        [PYTHON, "manage.py", "link_sandbox", "--control-url", f"http://127.0.0.1:{SANDBOX_CONTROL_PORT}",
         "--partner-url", f"https://localhost:{PARTNER_TLS_PORT}"], cwd=ROOT, check=False,
    )
    if link.returncode != 0:
        print("==> the sandbox is not linked to the service; its decisions use its allowlist only", flush=True)
    if os.environ.get("REDIS_URL"):
        start("worker", [PYTHON, "-m", "celery", "-A", "smarthome", "worker", "-l", "INFO", "-c", "2"])
        start("beat", [PYTHON, "-m", "celery", "-A", "smarthome", "beat", "-l", "INFO"])
    else:
        start("scheduler", [PYTHON, "manage.py", "run_scheduler"])

    time.sleep(2)
    print(
        f"""
==> smarthome is running (Ctrl-C stops everything)
    service       https://localhost:{PUBLIC_TLS_PORT}/healthz  (through nginx; dev CA in var/certs/ca.pem)
    API docs      https://localhost:{PUBLIC_TLS_PORT}/api/docs/
    admin (2FA)   https://localhost:{PUBLIC_TLS_PORT}/admin/   (demo logins and TOTP secrets printed above)
    metrics       http://127.0.0.1:{WEB_PORT}/metrics  (public pool; nginx serves no metrics)
                  http://127.0.0.1:{PARTNER_WEB_PORT}/metrics  (partner pool)
    partner API   https://localhost:{PARTNER_TLS_PORT}/partner/v1/  (mTLS: partner-client.pem)
    sandbox       https://127.0.0.1:{SANDBOX_PORT}/  (mTLS; fault control http://127.0.0.1:{SANDBOX_CONTROL_PORT}/_control/faults)
    processes     {", ".join(name for name, _ in processes)}
""",
        flush=True,
    )

    try:
        while True:
            for name, process in processes:
                if process.poll() is not None:
                    print(f"==> {name} exited with {process.returncode}; stopping the rest", flush=True)
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\n==> stopping", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
