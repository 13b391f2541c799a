#!/usr/bin/env python3
"""Start, stop and inspect a local LocalStack in host mode (no Docker).

    python tools/localstack.py up|down|status [--port N] [--timeout S]

Standard library only, so any interpreter can run it; LocalStack itself runs from .venv-localstack.
The tests import start(), stop(), wait_healthy() and free_port() from here.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
VENV_PYTHON = PROJECT / ".venv-localstack" / "bin" / "python"
VENV_COMMAND = (
    "make local-venv  (or: python3.11 -m venv .venv-localstack && "
    ".venv-localstack/bin/pip install -r requirements-localstack.txt)"
)
STATE_DIR = PROJECT / ".localstack" / "state"
PID_PATH = PROJECT / ".localstack" / "localstack.pid"
LOG_PATH = PROJECT / ".localstack" / "localstack.log"
DEFAULT_PORT = 4566
DEFAULT_DEADLINE_S = 120.0
# A clean SIGTERM shutdown took 2.3 s here. A SIGTERM that lands while LocalStack is still starting is
# lost (its shutdown thread dies with "There is no current event loop" and start-up goes on to "Ready."),
# so stop() falls back to SIGKILL.
STOP_GRACE_S = 10.0

# Only the services our stacks use, loaded eagerly so the first API call does not pay for a lazy start.
# LocalStack 4.13.1 Community ships no codebuild, codepipeline or codestar-connections provider: their
# APIs answer 501 InternalFailure ("...not included in your current license plan or has not yet been
# emulated by LocalStack.") whatever SERVICES says. Naming them costs no start-up time (measured) but
# logs "ERROR ... could not load service plugin codebuild" and they never appear in the health JSON,
# so they are left out. Secrets Manager pulls in lambda and kms (both "running" in the health JSON);
# the log's "WARN ... error calling function on_after_init: unsupported operand type(s) for |" is
# Lambda's: 4.13.1 writes `threading.Lock | None`, valid on Python 3.13 only. Harmless: no functions here.
SERVICES = ("cloudformation", "s3", "ec2", "iam", "sts", "logs", "secretsmanager", "ssm")

READY = {"available", "running"}


class LocalStackError(RuntimeError):
    """Something a human must fix; the message says what and how."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another process could still take it before we bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def health(endpoint: str) -> dict | None:
    """LocalStack's health JSON, or None while nothing answers."""
    # An empty ProxyHandler: an HTTP(S)_PROXY in the environment must not capture 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{endpoint}/_localstack/health", timeout=2) as response:
            return json.load(response)
    except (OSError, ValueError):  # URLError, refused, reset, timeout, half-started server
        return None


def wait_healthy(
    endpoint: str,
    deadline_s: float = DEFAULT_DEADLINE_S,
    services: Iterable[str] = (),
    process: subprocess.Popen | None = None,
) -> dict:
    """Poll the health endpoint until every service in `services` is available or running (or, with
    no services named, until it answers); return the health JSON. Raise LocalStackError on timeout,
    on an unknown service, or when `process` exits first."""
    services = list(services)
    deadline = time.monotonic() + deadline_s
    while True:
        state = health(endpoint)
        if state is not None:
            statuses = state.get("services", {})
            unknown = [name for name in services if name not in statuses]
            if unknown:
                raise LocalStackError(
                    f"LocalStack at {endpoint} does not know the service(s) {', '.join(unknown)}; "
                    f"it offers: {', '.join(sorted(statuses))}"
                )
            if all(statuses[name] in READY for name in services):
                return state
        if process is not None and process.poll() is not None:
            raise LocalStackError(f"LocalStack exited with code {process.returncode} while starting")
        if time.monotonic() > deadline:
            waiting = "no answer" if state is None else f"services not ready: {state.get('services')}"
            raise LocalStackError(
                f"LocalStack at {endpoint} not healthy after {deadline_s:.0f} s ({waiting})"
            )
        time.sleep(0.25)


def start(
    port: int,
    state_dir: Path,
    log_path: Path,
    pid_path: Path,
    services: Iterable[str] = SERVICES,
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> str:
    """Start LocalStack in the background, wait until it is healthy, return its endpoint URL.
    On failure it is stopped again and LocalStackError carries the end of its log."""
    if not VENV_PYTHON.exists():
        raise LocalStackError(f"{VENV_PYTHON} is missing; create it with:\n  {VENV_COMMAND}")
    if port_in_use(port):
        raise LocalStackError(
            f"port {port} on 127.0.0.1 is already taken by another program; "
            "stop it, or pick another port with --port N"
        )
    services = list(services)
    for folder in (state_dir, log_path.parent, pid_path.parent):
        folder.mkdir(parents=True, exist_ok=True)
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        # This machine looks like a container to LocalStack, which would then skip host-mode setup.
        "OVERRIDE_IN_DOCKER": "0",
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        # The default twisted gateway binds 0.0.0.0 whatever GATEWAY_LISTEN says; hypercorn honours it.
        "GATEWAY_SERVER": "hypercorn",
        "DNS_ADDRESS": "0",  # no DNS server: it would want port 53
        "SKIP_SSL_CERT_DOWNLOAD": "1",  # the network reaches package registries only
        "DISABLE_EVENTS": "1",  # no analytics calls home
        # Everything LocalStack keeps on disk goes here, except S3 object data: S3 always uses
        # /tmp/localstack-s3-storage (a constant in localstack/services/s3/provider.py, checked on
        # 4.13.1), one folder per bucket, left behind after shutdown.
        "FILESYSTEM_ROOT": str(state_dir),
        "EAGER_SERVICE_LOADING": "1",
        "SERVICES": ",".join(services),
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(VENV_PYTHON), "-m", "localstack.runtime.main"],
            # Not the caller's cwd: `-m` puts it on sys.path, and tools/localstack.py would shadow LocalStack.
            cwd=state_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group: it outlives `make local-up`, and stop() can signal the whole group.
            start_new_session=True,
        )
    pid_path.write_text(f"{process.pid}\n")
    try:
        wait_healthy(endpoint, deadline_s, services, process)
    except LocalStackError as error:
        stop(pid_path)
        raise LocalStackError(
            f"{error}\n--- last 30 lines of {log_path} ---\n{tail(log_path)}\n---\n"
            f"Hint: is .venv-localstack complete (re-create it with: {VENV_COMMAND})? "
            f"Is port {port} free? A slow machine may need a longer --timeout."
        ) from None
    return endpoint


def running_pid(pid_path: Path) -> int | None:
    """The pid in pid_path if that process is still a live LocalStack, else None."""
    try:
        pid = int(pid_path.read_text())
        # Guards against a stale pid file whose pid now belongs to another program; a zombie has
        # an empty cmdline, so it counts as gone too.
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"localstack.runtime.main" in cmdline else None


def stop(pid_path: Path, grace_s: float = STOP_GRACE_S) -> bool:
    """Stop the LocalStack recorded in pid_path: SIGTERM to its process group, SIGKILL after
    grace_s. Remove the pid file. Return whether one was running; safe to call again."""
    pid = running_pid(pid_path)
    if pid is not None:
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while _group_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _group_alive(pid):
                break
    pid_path.unlink(missing_ok=True)
    return pid is not None


def _group_alive(pgid: int) -> bool:
    try:
        # When we are the parent (the pytest fixture), reap it, or its zombie keeps the group "alive".
        os.waitpid(pgid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


def _relative(path: Path) -> str:
    return str(path.relative_to(PROJECT)) if path.is_relative_to(PROJECT) else str(path)


def up(port: int, deadline_s: float) -> int:
    endpoint = f"http://127.0.0.1:{port}"
    pid = running_pid(PID_PATH)
    if pid is not None:
        if health(endpoint) is not None:
            print(f"LocalStack is already running at {endpoint} (pid {pid}).")
            return 0
        raise LocalStackError(
            f"LocalStack pid {pid} is alive but {endpoint} does not answer (still starting, or started "
            f"with another --port?). See {_relative(LOG_PATH)}, or run: python tools/localstack.py down"
        )
    started = time.monotonic()
    endpoint = start(port, STATE_DIR, LOG_PATH, PID_PATH, SERVICES, deadline_s)
    version = (health(endpoint) or {}).get("version", "?")
    print(
        f"LocalStack {version} is up at {endpoint} after {time.monotonic() - started:.1f} s "
        f"(pid {running_pid(PID_PATH)}, log {_relative(LOG_PATH)}).\n"
        f"Use it with: export AWS_ENDPOINT_URL={endpoint}"
    )
    return 0


def down() -> int:
    if stop(PID_PATH):
        print("LocalStack stopped.")
    else:
        print(f"LocalStack was not running (no live pid in {_relative(PID_PATH)}).")
    return 0


def status(port: int) -> int:
    endpoint = f"http://127.0.0.1:{port}"
    pid = running_pid(PID_PATH)
    state = health(endpoint)
    if pid is not None and state is not None:
        print(f"running at {endpoint} (pid {pid}, LocalStack {state.get('version', '?')})")
        return 0
    if pid is not None:
        print(f"not healthy: pid {pid} is alive but {endpoint} does not answer; see {_relative(LOG_PATH)}")
    elif state is not None:
        print(f"running at {endpoint}, but not started by this tool (no pid in {_relative(PID_PATH)})")
        return 0
    else:
        print(f"not running (endpoint would be {endpoint})")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start, stop and inspect a local LocalStack (no Docker).")
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_DEADLINE_S, help="seconds `up` waits for health"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(args.port, args.timeout)
        if args.command == "down":
            return down()
        return status(args.port)
    except LocalStackError as error:
        print(f"localstack: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
