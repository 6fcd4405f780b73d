"""Watch a running notebook: its kernel's output is its progress, shown in the terminal; long silence stops it.

A slow machine is not a hung one, so the study sets no wall-clock limit on a cell. Instead every stream
the kernel writes (prints, tqdm bars on stderr) counts as progress, and the latest line is echoed to the
terminal. When a cell writes nothing for the profile's ``silence_limit_s``, its kernel is interrupted, so
the executed notebook keeps the traceback of where it hung; a kernel still running ``KILL_AFTER_S`` later
(stuck in a C call or a lock) is killed with the processes it started.

:class:`WatchedEngine` is papermill's nbclient engine with no cell timeout and the watch attached: the
engine is where papermill lets a caller reach the kernel it starts.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable
from typing import TextIO

from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import Engine, papermill_engines
from papermill.log import logger

ENGINE = "ausil-study"
KILL_AFTER_S = 30.0  # after the interrupt: time for the cell to unwind and papermill to save its traceback
ECHO_EVERY_S = 30.0  # between echoed lines in a log file or pipe; a terminal's status line is redrawn each second


def latest_line(tail: str, text: str) -> tuple[str, str | None]:
    """Follow a stream as a terminal would: return the unfinished line and the newest non-blank line.

    ``tail`` is the unfinished line before ``text``. A carriage return (tqdm redrawing its bar) starts the
    line again and a newline ends it; the newest line is the last non-blank piece, finished or not.
    """
    pieces = re.split(r"[\r\n]", tail + text)
    newest = next((p.rstrip() for p in reversed(pieces) if p.strip()), None)
    return pieces[-1], newest


class _Stream:
    """The file-like object papermill writes one of the kernel's streams to (its ``stdout_file``)."""

    def __init__(self, watch: KernelWatch, name: str) -> None:
        self.watch, self.name = watch, name

    def write(self, text: str) -> None:
        self.watch.output(self.name, text)

    def flush(self) -> None:
        """Nothing to flush: each write is shown (or skipped) at once."""


class KernelWatch:
    """One notebook's watch: echoes its output under ``label`` and stops its kernel after silence.

    The silence clock runs only while a code cell executes (from its request to its reply), so the
    kernel's start and shutdown, and the runner's own work between cells, never count as silence.
    """

    def __init__(self, label: str, silence_limit_s: float, terminal: TextIO) -> None:
        self.label, self.silence_limit_s, self.terminal = label, silence_limit_s, terminal
        self.in_place = terminal.isatty()  # a terminal gets one status line, redrawn; a log gets lines
        self.stopped = False  # set when silence made the watch interrupt the kernel
        self.stdout, self.stderr = _Stream(self, "stdout"), _Stream(self, "stderr")
        self._tails: dict[str, str] = {}
        self._heard = time.monotonic()
        self._armed = False
        self._echoed, self._echoed_at, self._drawn = "", float("-inf"), False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._kernel_pid: Callable[[], int | None] = lambda: None
        self._thread = threading.Thread(target=self._watch, name=f"watch {label}", daemon=True)

    # --- called from papermill's client, in the thread running the notebook ------------------------

    def cell_executing(self, **_hook) -> None:
        """nbclient's ``on_cell_execute`` hook: a code cell was sent to the kernel; the clock starts."""
        self._heard, self._armed = time.monotonic(), True

    def cell_executed(self, **_hook) -> None:
        """nbclient's ``on_cell_executed`` hook: the kernel answered; no silence counts until the next cell."""
        self._armed = False

    def output(self, stream: str, text: str) -> None:
        """Kernel output on ``stream`` (stdout or stderr): progress. Echo its newest line, at most so often."""
        self._heard = time.monotonic()
        self._tails[stream], newest = latest_line(self._tails.get(stream, ""), text)
        every = 1.0 if self.in_place else ECHO_EVERY_S
        if newest is None or newest == self._echoed or self._heard - self._echoed_at < every:
            return
        self._echoed, self._echoed_at = newest, self._heard
        line = f"{self.label}: {newest}"
        if self.in_place:
            with self._lock:
                self.terminal.write(f"\r{line[: shutil.get_terminal_size().columns - 1]}\x1b[K")
                self.terminal.flush()
                self._drawn = True
        else:
            self._say(line)

    # --- the watch itself --------------------------------------------------------------------------------

    def __enter__(self) -> KernelWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self._say("")

    def attach(self, kernel_pid: Callable[[], int | None]) -> None:
        """Say how to find the kernel's process id (``None`` while it has not started)."""
        self._kernel_pid = kernel_pid

    def _watch(self) -> None:
        poll_s = min(1.0, self.silence_limit_s / 4)
        while not self._done.wait(poll_s):
            if self._armed and time.monotonic() - self._heard > self.silence_limit_s:
                break
        else:
            return
        self.stopped = True
        self._say(f"{self.label}: no output for {self.silence_limit_s:g} s; interrupting the kernel")
        self._signal(signal.SIGINT)
        if not self._done.wait(KILL_AFTER_S):
            self._say(f"{self.label}: the kernel ignored the interrupt for {KILL_AFTER_S:g} s; killing it")
            self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        """Send ``signum`` to the kernel and the processes it started (its process group), as Jupyter does."""
        pid = self._kernel_pid()
        if pid is None:
            return
        try:
            group = os.getpgid(pid)
            if group == os.getpgrp():  # never signal our own group: that would stop the study itself
                os.kill(pid, signum)
            else:
                os.killpg(group, signum)
        except ProcessLookupError:
            pass  # it ended on its own meanwhile

    def _say(self, line: str) -> None:
        """Write ``line`` on a line of its own, below the status line if one is drawn."""
        with self._lock:
            self.terminal.write(("\n" if self._drawn else "") + (line + "\n" if line else ""))
            self.terminal.flush()
            self._drawn = False


def _kernel_pid(client: PapermillNotebookClient) -> int | None:
    """The process id of the client's kernel, once started (jupyter_client's local provisioner's process)."""
    provisioner = client.km.provisioner if client.km is not None else None
    process = getattr(provisioner, "process", None)
    return process.pid if process is not None else None


class WatchedEngine(Engine):
    """papermill's nbclient engine with no cell timeout, whose kernel a :class:`KernelWatch` watches."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, *, watch: KernelWatch, start_timeout: float, **_papermill):
        # papermill also passes input_path, log_output and stdout_file/stderr_file: the watch replaces them
        client = PapermillNotebookClient(
            nb_man,
            kernel_name=kernel_name,
            startup_timeout=start_timeout,
            timeout=None,
            log=logger,
            stdout_file=watch.stdout,
            stderr_file=watch.stderr,
            on_cell_execute=watch.cell_executing,
            on_cell_executed=watch.cell_executed,
        )
        watch.attach(lambda: _kernel_pid(client))
        return client.execute()


papermill_engines.register(ENGINE, WatchedEngine)
