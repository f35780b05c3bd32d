"""The Prefect server settings nighttune runs with, on a lasting server or a temporary one.

Prefect's task-run recorder (a server service) writes each task-run event in a
transaction of its own the moment it arrives: Prefect's default batch size is 1. On
the SQLite-backed server (Prefect's default database) those commits race the request
each tagged task run makes right after emitting its first events, for a concurrency
slot: that request's transaction reads, then writes, and when the recorder has
committed in between SQLite fails it at once ("database is locked"; a busy timeout
does not apply to a read that must turn into a write). The server answers 503 and
Prefect's client waits 2 s before it asks again: 2-3 times in a digits `tune` run of
16 s. With the recorder writing in batches (up to 100 events, at least once a second)
its commits no longer follow each task's start, and the same runs met no 503
(bench/overhead.py; README, Performance). Task runs show up in the UI up to a second
later; a server that stops writes what it holds first.

Values set in the environment win, so Prefect's own defaults stay one variable away.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",  # seconds, a whole number
}


def unset_server_settings(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`SERVER_SETTINGS` that ``environ`` leaves to us."""
    return {name: value for name, value in SERVER_SETTINGS.items() if name not in environ}


def served_settings(host: str, port: int, environ: Mapping[str, str] = os.environ) -> dict:
    """What `nighttune server --host --port` sets for the server it starts. Prefect's
    ``server start --port`` binds there, but its UI asks for the API at
    PREFECT_UI_API_URL, which defaults to PREFECT_API_URL (this shell's profile: often
    another server) or else to PREFECT_SERVER_API_HOST/PORT (4200): the UI then said
    "Oops" on any other port. Here the UI's API URL follows the command's host and port;
    for a wildcard bind (0.0.0.0, ::) it names this machine (its fully qualified name),
    since a browser elsewhere cannot reach "0.0.0.0". A PREFECT_UI_API_URL set in the
    environment wins (a reverse proxy)."""
    settings = {"PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(port)}
    if not {"PREFECT_UI_API_URL", "PREFECT_SERVER_UI_API_URL"} & set(environ):
        name = socket.getfqdn() if host in WILDCARDS else host
        name = f"[{name}]" if ":" in name else name  # an IPv6 literal
        settings["PREFECT_UI_API_URL"] = f"http://{name}:{port}/api"
    return settings


AUTH_SETTING = "PREFECT_SERVER_API_AUTH_STRING"  # the server's; clients: PREFECT_API_AUTH_STRING
CSRF_SETTING = "PREFECT_SERVER_CSRF_PROTECTION_ENABLED"
WILDCARDS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is this machine's loopback (127.0.0.0/8,
    ::1): only this machine's own users reach a server bound there."""
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False  # `check_listen` says what is wrong with it
    addresses = {str(info[4][0]).split("%")[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def check_auth(host: str, *, trusted_network: bool, environ: Mapping[str, str]) -> None:
    """Refuse, in one line, a server that other machines can reach with no auth string.

    Whoever reaches Prefect's API can create deployments and flow runs, that is run code
    on every worker (GPU machines holding the bucket's keys): off loopback, Prefect's
    basic auth is on unless the user says the network is trusted. The auth string comes
    from the environment only: a command-line argument shows in `ps` to every user."""
    from nighttune.tasks.core.errors import UserError

    if trusted_network or is_loopback(host) or environ.get(AUTH_SETTING, "").strip():
        return
    raise UserError(
        f"--host {host} lets other machines drive this server, and {AUTH_SETTING} is not "
        f"set: export {AUTH_SETTING}='user:a-long-random-password' in the server's "
        "environment (clients and workers set PREFECT_API_AUTH_STRING to the same), or "
        "pass --trusted-network if only your team can reach this network "
        "(docs/production.md, Securing the server)"
    )


def auth_settings(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """With an auth string, CSRF protection too (Prefect's default is off): a page on
    another site cannot make a logged-in browser POST to the API. Prefect's clients fetch
    a token first (PREFECT_CLIENT_CSRF_SUPPORT_ENABLED, on by default). A value set in
    the environment wins."""
    if environ.get(AUTH_SETTING, "").strip() and CSRF_SETTING not in environ:
        return {CSRF_SETTING: "true"}
    return {}


def security_summary(settings: Mapping[str, str]) -> str:
    """``basic auth on, CSRF protection on``: what the server will ask of its clients
    (never the auth string itself)."""
    auth = "on" if settings.get(AUTH_SETTING, "").strip() else "off"
    enabled = settings.get(CSRF_SETTING, "").strip().lower() in ("1", "true", "t", "yes", "on")
    return f"basic auth {auth}, CSRF protection {'on' if enabled else 'off'}"


def ui_api_warning(host: str, ui_api_url: str) -> str | None:
    """For a wildcard bind, a warning when the UI's API address names this machine by a
    name that resolves to loopback (``/etc/hosts`` often maps the host name to
    127.0.0.1): a browser elsewhere would load the UI, then call its own localhost."""
    from urllib.parse import urlsplit

    name = urlsplit(ui_api_url).hostname or ""
    if host not in WILDCARDS or not is_loopback(name):
        return None
    return (
        f"warning: the UI will call the API at {ui_api_url}, and {name!r} is this machine's "
        "loopback: browsers on other machines cannot reach it. Give the address they use: "
        "--ui-api-url http://SERVER:PORT/api (or PREFECT_UI_API_URL)"
    )


def api_problem(url: str | None, auth_string: str | None, *, timeout: float = 10) -> str | None:
    """Why a client cannot use the Prefect API at ``url`` sending ``auth_string``
    (PREFECT_API_AUTH_STRING), in one line that says how to fix it; None when it can.

    Asks an endpoint behind Prefect's basic auth (``/health`` is open to probes), once:
    Prefect's own client answers a 401 with a traceback, and a worker retries."""
    import base64
    import urllib.error
    import urllib.request

    from nighttune.tasks.core.urls import redact

    if not url:
        return (
            "set PREFECT_API_URL to your Prefect server first "
            "(e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api; start one: make server)"
        )
    shown = redact(url)
    request = urllib.request.Request(f"{url.rstrip('/')}/admin/version")
    if auth_string:
        token = base64.b64encode(auth_string.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        if exc.code != 401:
            return f"the Prefect server at PREFECT_API_URL={shown} answered HTTP {exc.code}"
        if not auth_string:
            return (
                f"the Prefect server at PREFECT_API_URL={shown} wants its auth string "
                "(401 Unauthorized): set PREFECT_API_AUTH_STRING to the server's "
                f"{AUTH_SETTING} (user:password)"
            )
        return (
            f"the Prefect server at PREFECT_API_URL={shown} refused PREFECT_API_AUTH_STRING "
            f"(401 Unauthorized): set it to the server's {AUTH_SETTING}"
        )
    except (OSError, ValueError) as exc:  # ValueError: a URL that does not parse
        reason = getattr(exc, "reason", exc)
        return f"no Prefect server answers at PREFECT_API_URL={shown} ({reason}); make server"


def check_api() -> None:
    """With PREFECT_API_URL set, fail in one line (exit 2) when that server cannot be
    used: down, or refusing this client's PREFECT_API_AUTH_STRING. Without it nothing is
    asked: the command starts a temporary server of its own."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL

    from nighttune.tasks.core.errors import UserError

    url = PREFECT_API_URL.value()
    if url and (problem := api_problem(url, PREFECT_API_AUTH_STRING.value())):
        raise UserError(f"{problem}, or unset PREFECT_API_URL to run on a temporary server")


def unset_server_setting_updates() -> dict:
    """`unset_server_settings` as updates for `prefect.settings.temporary_settings`: how a
    temporary server, which Prefect starts with the current settings, gets them."""
    import prefect.settings

    unset = unset_server_settings()
    return {getattr(prefect.settings, name): value for name, value in unset.items()}


class TemporaryServer:
    """A Prefect API server this process starts for its own flow run, and always stops.

    Prefect's own temporary server shares the process group of the command: Ctrl-C
    in a terminal stopped it first, and the flow engine's report of the interrupted
    run then retried against a dead server for over a minute; a SIGTERM to the
    command left it running (it is stopped by `atexit` only). This one runs in a
    session of its own, on a port the OS picked, and `stop` ends its whole process
    group — called on every exit of the command, and by `flows.interrupts` when a
    signal's grace runs out. It is what Prefect starts (uvicorn on Prefect's app
    factory, UI off, ephemeral mode), plus `SERVER_SETTINGS`.
    """

    def __init__(self, startup_s: float) -> None:
        self.startup_s = startup_s
        self.process: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="nighttune-prefect-server-", suffix=".log")[1])
        self.api_url = ""
        self.deadline = 0.0  # set by the first launch

    def launch(self) -> None:
        """Start the server process on a free port, without waiting for it (`ready` does)."""
        import prefect
        from prefect.settings import get_current_settings

        loopback_without_proxy()

        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            **get_current_settings().to_environment_variables(exclude_unset=True),
            **unset_server_settings(),
        }
        # A server's auth string exported in this shell (the machine that runs `nighttune
        # server`) would lock this client out of its own temporary server, which listens
        # on loopback only.
        env.pop(AUTH_SETTING, None)
        self.deadline = self.deadline or time.monotonic() + self.startup_s
        port = _free_port()
        self.api_url = f"http://127.0.0.1:{port}/api"
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--app-dir"]
                + [str(Path(prefect.__file__).parent.parent), "--factory"]
                + ["prefect.server.api.server:create_app", "--host", "127.0.0.1"]
                + ["--port", str(port), "--log-level", "error", "--lifespan", "on"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def ready(self) -> str:
        """Wait until the launched server answers; its API URL."""
        for _ in range(3):  # another process may take the port between pick and bind
            if self._wait_healthy(self.deadline):
                return self.api_url
            if time.monotonic() > self.deadline:
                break
            self.launch()
        self.stop(keep_log=True)
        tail = self.log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ConnectionError(  # an OSError: the CLI says it in one line, exit 1
            f"the temporary Prefect server did not start within {self.startup_s:.0f} s "
            f"({tail[0][:200]}; log: {self.log}); set PREFECT_API_URL to a running server "
            "(make server) or PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
        )

    def _wait_healthy(self, deadline: float) -> bool:
        import urllib.request

        assert self.process is not None
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return True
            except OSError:
                time.sleep(0.1)
        return False

    def stop(self, keep_log: bool = False) -> None:
        """End the server's process group (SIGTERM, SIGKILL after 5 s); safe to call twice."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
            except ProcessLookupError:
                pass
        if not keep_log:
            self.log.unlink(missing_ok=True)


def loopback_without_proxy() -> None:
    """Talk to 127.0.0.1 directly: with HTTP_PROXY set and no NO_PROXY, the health check
    and Prefect's client sent the temporary server's requests to the proxy (a run waited
    out the 120 s start-up and failed)."""
    for name in ("NO_PROXY", "no_proxy"):
        have = [h.strip() for h in os.environ.get(name, "").split(",") if h.strip()]
        os.environ[name] = ",".join(dict.fromkeys([*have, "127.0.0.1", "localhost"]))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_listen(host: str, port: int) -> None:
    """Fail in one line when the server could not listen on ``host:port``: the port taken
    (another server?) or an address this machine does not have."""
    from nighttune.tasks.core.errors import UserError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UserError(f"--host {host!r}: no such address; give an IP or host name") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = "is in use (a server already running?); choose another --port"
            else:
                why = f"fails ({exc.strerror}); --host 0.0.0.0 listens on every address"
            raise UserError(f"listening on {host}:{port} {why}") from None


TEMPORARY_SERVER_STARTUP_S = 120


@contextlib.contextmanager
def local_flow_settings(while_starting: Callable[[], object] = lambda: None) -> Iterator[None]:
    """Prefect settings for a flow this command runs itself.

    Without ``PREFECT_API_URL`` the flow talks to a temporary server of its own
    (`flows.server.TemporaryServer`: stopped on every exit, signals included), so
    nobody is there to read flow-run heartbeats (they mark crashed runs on a lasting
    server); and joining the heartbeat thread costs up to 1 s at the end of every run
    (it sleeps in 1 s steps). They are off in that case only, and so is the UI's URL:
    that server has no UI to link to. The server gets
    `TEMPORARY_SERVER_STARTUP_S` to start unless
    ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` says otherwise (Prefect's
    20 s ran out on a busy 2-core machine), and the server settings of
    `flows.server`, as `nighttune server` has. ``while_starting`` runs while the server
    starts (the command's checks and imports: most of a short run's start-up).
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_UI_URL,
        temporary_settings,
    )

    from nighttune.flows import interrupts

    if PREFECT_API_URL.value():
        while_starting()
        yield
        return
    startup = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
    server = TemporaryServer(float(startup) if startup else TEMPORARY_SERVER_STARTUP_S)
    stop = interrupts.on_interrupt(server.stop)
    try:
        server.launch()
        while_starting()
        api_url = server.ready()
        # No UI URL: the temporary server serves no UI and stops with the command, so
        # Prefect's "View at http://127.0.0.1:PORT/runs/..." led to a 404, then to a
        # closed port (the command says where the run's record is instead).
        updates = {
            PREFECT_API_URL: api_url,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
            PREFECT_UI_URL: "",
        }
        with temporary_settings(updates=updates):
            try:
                yield
            finally:  # what the run logged and emitted reaches the server before it stops
                drain_prefect_workers()
    finally:
        server.stop()
        interrupts.forget(stop)


def drain_prefect_workers(timeout: float = 5.0) -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout)
