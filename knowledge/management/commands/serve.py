"""manage.py serve [ADDRPORT]: the web server and a Celery worker side by side (`make run`).

Both run as children in sessions of their own, so that Ctrl-C in the terminal reaches this
command alone; it then stops each child once (the worker with TERM: one warm shutdown, the
web server with INT) and waits for both. Their output is passed on line by line, marked with
its source. The login line comes last, once the site answers and the worker is ready.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import IO, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from knowledge.management.commands.bootstrap_demo import login_text

STOP_SECONDS = 20  # a worker busy with a document gets this long to finish it, then is killed
WORKER_READY = " ready."  # celery's "celery@host ready." line


class Child:
    """A child process whose output lines are copied to ours, marked with its name."""

    def __init__(self, name: str, command: list[str], write: Callable[[str], None]) -> None:
        self.name = name
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.seen = threading.Event()
        self._watch_for = ""
        self._write = write
        self._reader = threading.Thread(target=self._copy, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def watch_for(self, text: str) -> None:
        self._watch_for = text

    def _copy(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            self._write(f"{self.name:<7}| {line}")
            if self._watch_for and self._watch_for in line:
                self.seen.set()

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: signal.Signals) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def kill(self) -> None:
        """The child and whatever it started (a worker's pool processes)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def finish(self, timeout: float) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait()
        self._reader.join(2)


class Command(BaseCommand):
    help = (
        "Run the web server and a Celery worker until Ctrl-C (or TERM), which stops both. "
        "Prints where and as whom to log in once both are ready."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--username", default="admin", help="the account the login line names")
        parser.add_argument(
            "--ready-timeout", type=float, default=300, help="seconds to wait for both to start"
        )

    def handle(self, *args, addrport: str, username: str, ready_timeout: float, **options: Any):
        host, _, port = addrport.rpartition(":")
        host = host or "127.0.0.1"
        url = f"http://{host}:{port}/"
        write = self._line_writer()
        signals: list[int] = []
        stopping = threading.Event()

        def on_signal(number: int, frame: object) -> None:
            signals.append(number)
            stopping.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        worker, web = self._start(host, port, write)
        children = [worker, web]
        try:
            if self._wait_until_ready(url, worker, web, stopping, ready_timeout):
                web.seen.wait(1)  # its log line of the health check, before the login line
                write("")
                write(login_text(username, url))
                write("Ctrl-C stops the web server and the worker.")
            while not stopping.is_set() and all(child.running() for child in children):
                stopping.wait(0.5)
        finally:
            failed = [child.name for child in children if not child.running()]
            if signals:
                write("Stopping the web server and the worker…")
            _stop(worker, web, signals)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failed and not signals:
            raise CommandError(f"The {' and the '.join(failed)} stopped; see its output above.")
        write("Stopped.")

    def _line_writer(self) -> Callable[[str], None]:
        """Write whole lines to stdout from the children's reader threads, one at a time."""
        lock = threading.Lock()

        def write(line: str) -> None:
            with lock:
                self.stdout.write(line)
                self.stdout.flush()

        return write

    def _start(self, host: str, port: str, write: Callable[[str], None]) -> tuple[Child, Child]:
        """Start the Celery worker and the web server, their output relayed through write."""
        # -u: unbuffered, so that their lines arrive as they are written
        manage = [sys.executable, "-u", str(settings.BASE_DIR / "manage.py")]
        worker = Child(
            "worker",
            [sys.executable, "-u", "-m", "celery", "-A", "rag_site", "worker", "--loglevel=INFO",
             "--concurrency=1", "--without-gossip", "--without-mingle", "--hostname=worker@%h"],
            write,
        )  # fmt: skip
        worker.watch_for(WORKER_READY)
        web = Child("web", [*manage, "runserver", f"{host}:{port}", "--noreload"], write)
        web.watch_for(reverse("knowledge:health"))
        return worker, web

    def _wait_until_ready(
        self, url: str, worker: Child, web: Child, stopping: threading.Event, timeout: float
    ) -> bool:
        """True once the site answers its health check and the worker said it is ready."""
        health = url.rstrip("/") + reverse("knowledge:health")
        deadline = time.monotonic() + timeout
        site_up = False
        while not stopping.is_set() and worker.running() and web.running():
            if not site_up:
                with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=2) as r:
                    site_up = r.status == 200
            if site_up and worker.seen.is_set():
                return True
            if time.monotonic() > deadline:
                self.stderr.write(f"Not ready after {timeout:g} s; still waiting.")
                deadline = float("inf")
            stopping.wait(0.3)
        return False


def _stop(worker: Child, web: Child, signals: list[int]) -> None:
    """Stop both children: the worker with one warm shutdown, the web server as Ctrl-C does;
    wait up to STOP_SECONDS, or less when another Ctrl-C arrives, then kill what is left."""
    worker.stop(signal.SIGTERM)
    web.stop(signal.SIGINT)
    count = len(signals)
    deadline = time.monotonic() + STOP_SECONDS
    while any(child.running() for child in (worker, web)) and time.monotonic() < deadline:
        if len(signals) > count:
            break
        time.sleep(0.1)
    for child in (worker, web):
        child.finish(0)
