"""Run a long-lived command (a Prefect worker, the Prefect server) as a service: one
SIGTERM or SIGINT stops it, and everything it started, within seconds.

    python deployments/service.py -- .venv/bin/prefect worker start --pool cpu

`prefect worker start` answers its first SIGTERM or SIGINT by no longer taking runs
and waiting for the flow runs it started to finish (a night's grid: hours); only a
second signal ends it, with SIGKILL. So `make worker-cpu` needed two Ctrl-Cs, make
then said "Killed", and a flow run could be left behind. Here the command runs in a
process group of its own; the first SIGTERM or SIGINT sends SIGTERM to that whole
group (the worker and its flow runs: a run stopped so is reported Crashed, and
`prefect flow-run retry` resumes it from the store), and what is left after `GRACE_S`
gets SIGKILL, as does everything at a second signal. A stop that was asked for exits
0. `make` sends its recipe SIGTERM when it gets one (systemctl stop, kill), a
terminal's Ctrl-C reaches this process with make's, and in the image it is PID 1
(docker stop).
Stdlib only: it runs before and around everything else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

GRACE_S = 20.0


class Service:
    """The command's process group, and the stop asked of it."""

    def __init__(self, command: list[str]) -> None:
        self.name = os.path.basename(command[0])
        self.process = subprocess.Popen(command, start_new_session=True)
        self.stop_asked: float | None = None

    def on_signal(self, signum: int, frame: object) -> None:
        if self.stop_asked is None:
            self.stop_asked = time.monotonic()
            print(
                f"service: {signal.Signals(signum).name}: stopping {self.name} and what it "
                f"started (SIGKILL after {GRACE_S:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            self.signal_group(signal.SIGTERM)
        else:  # asked twice: at once
            self.signal_group(signal.SIGKILL)

    def signal_group(self, signum: int) -> bool:
        """Send ``signum`` to the command's process group; False when none is left."""
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def run(self) -> int:
        """Wait for the command (and, once a stop was asked, the rest of its group)."""
        while True:
            try:
                code = self.process.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                self.kill_when_overdue()
        if self.stop_asked is None:
            return code
        # The leader is gone; flow runs it started may still be ending (as PID 1 of a
        # container this process inherits them: reaped here, or they stay as zombies).
        deadline = time.monotonic() + GRACE_S + 5
        while self.signal_group(0) and time.monotonic() < deadline:
            self.kill_when_overdue()
            reap_orphans()
            time.sleep(0.2)
        return 0

    def kill_when_overdue(self) -> None:
        if self.stop_asked is not None and time.monotonic() - self.stop_asked > GRACE_S:
            self.signal_group(signal.SIGKILL)


def reap_orphans() -> None:
    """Collect any child of this process that has ended (orphans included, when this
    process is a container's PID 1)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1 :] if "--" in argv else argv
    if not command:
        print("usage: service.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    service = Service(command)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, service.on_signal)
    return service.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
