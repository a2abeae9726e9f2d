"""The agent's inputs: the audit log followed across rotations (`FileSource`) or records piped to stdin by
auditd (`StdinSource`, plugin mode), and how the loop waits for each (`FileWait`, `StdinWait`).

A source yields batches of complete lines and says where the state should resume; a wait blocks until there
may be something to read (lines, a signal, a timeout) and returns False at the end of the input.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from collections import deque
from typing import Any, Callable, Deque, Iterator, List, Optional, Tuple

from ..pipeline import Pipeline
from ..source.tail import LogFollower, Position

log = logging.getLogger("auditimds")

# A busy log (at least BUSY_LINES_PER_S lines a second, about 330 execs/s) is read every BUSY_POLL_INTERVAL_S
# with the watch paused; below that, inotify wakes the agent at each write (an alert within milliseconds).
BUSY_POLL_INTERVAL_S = 0.1
BUSY_LINES_PER_S = 2000
BUSY_QUIET_POLLS = 4


class FileSource:
    """The audit log, through a LogFollower; remembers where batches start, to resume far enough back."""

    resumable = True  # checkpoints a position; periodic health line and metrics

    def __init__(self, path: str, *, start: str, position: Optional[Position], resume_ts_ms: Optional[int],
                 max_batch_bytes: int) -> None:
        self.follower = LogFollower(path, start=start, position=position,
                                    position_time=None if resume_ts_ms is None else resume_ts_ms / 1000,
                                    max_batch_bytes=max_batch_bytes, log=log)
        self.resume_ts_ms = resume_ts_ms  # the log time at the saved resume position
        self._samples: Deque[Tuple[Position, int]] = deque()

    @property
    def position(self) -> Optional[Position]:
        return self.follower.position

    @property
    def following(self) -> bool:
        return self.follower.status == "following"

    def batches(self) -> Iterator[List[bytes]]:
        for batch in self.follower.iter_available():
            ts = Pipeline.first_event_ms(batch.lines)
            if ts is not None and batch.start is not None:
                self._samples.append((batch.start, ts))
            yield batch.lines

    def resume_position(self, limit_ms: int) -> Tuple[Optional[Position], Optional[int]]:
        """The newest batch start whose first line is at least as old as `limit_ms`, and the log time of that
        line (None when unknown)."""
        samples = self._samples
        if not samples:
            return self.follower.position, self.resume_ts_ms
        chosen = 0
        for i, (_pos, ts) in enumerate(samples):
            if ts <= limit_ms:
                chosen = i
            else:
                break
        for _ in range(chosen):
            samples.popleft()
        return samples[0]

    def stats(self) -> Optional[dict]:
        return self.follower.stats.as_dict()

    def close(self) -> None:
        self.follower.close()


class StdinSource:
    """Records on a file descriptor (auditd's plugin pipe): the log file, rotations and checkpoints of the
    position are auditd's business."""

    resumable = False
    position = None
    following = True

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lines: List[bytes] = []
        self._partial = b""

    def fill(self) -> bool:
        """Read what the pipe has (it is ready); False at the end of input."""
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            return False
        data = self._partial + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return True
        self._partial = data[cut + 1 :]
        self._lines = data[:cut].split(b"\n")
        return True

    def end(self) -> None:
        """End of input: an unterminated last line is read too."""
        if self._partial:
            self._lines, self._partial = [self._partial], b""

    def batches(self) -> Iterator[List[bytes]]:
        if self._lines:
            lines, self._lines = self._lines, []
            yield lines

    def stats(self) -> None:
        return None

    def close(self) -> None:
        pass


class Cadence:
    """When to stop watching the log and read it on a timer instead, from the rate at which lines arrive.

    Every line auditd writes is one inotify event, turned into Python objects on watchdog's threads: under a
    sustained load that costs more than reading the log ten times a second.  Below `busy_lines_per_s` the
    watch stays on and an alert is written milliseconds after its record.  The rate is measured over windows
    of at least `interval` seconds; once busy, `quiet_windows` windows in a row below the rate go back to
    watching (hysteresis: a log near the threshold does not flap).  Time is passed in.
    """

    def __init__(self, busy_lines_per_s: float = BUSY_LINES_PER_S, interval: float = BUSY_POLL_INTERVAL_S,
                 quiet_windows: int = BUSY_QUIET_POLLS) -> None:
        self.busy_lines_per_s = busy_lines_per_s
        self.interval = interval
        self.quiet_windows = quiet_windows
        self.busy = False
        self._start: Optional[float] = None
        self._lines = 0
        self._quiet = 0

    def observe(self, lines: int, now: float) -> None:
        """`lines` were read by the step that ran at `now`."""
        if self._start is None or now < self._start:  # first call, or the clock went back
            self._start, self._lines = now, 0
        self._lines += lines
        elapsed = now - self._start
        if elapsed < self.interval:
            return
        fast = self._lines >= self.busy_lines_per_s * elapsed
        self._start, self._lines = now, 0
        if fast:
            self.busy, self._quiet = True, 0
        elif self.busy:
            self._quiet += 1
            if self._quiet >= self.quiet_windows:
                self.busy, self._quiet = False, 0


class SignalPipe:
    """Signals wake the loop through a pipe (`signal.set_wakeup_fd`), never by calling into threading from a
    handler: a handler that sets a `threading.Event` while the interrupted main thread holds that Event's
    lock (inside `Event.wait`) deadlocks the process.  Handlers only set flags."""

    def __init__(self) -> None:
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        self._old = signal.set_wakeup_fd(self.wfd)

    def drain(self) -> None:
        try:
            while os.read(self.rfd, 512):
                pass
        except (BlockingIOError, OSError):
            pass

    def forward_to(self, wake: Callable[[], None]) -> None:
        """A thread that turns each signal into `wake()` (from a normal thread context)."""
        import select
        import threading

        def pump() -> None:
            while True:
                try:
                    select.select([self.rfd], [], [])
                except (OSError, ValueError):
                    return
                self.drain()
                wake()

        threading.Thread(target=pump, name="auditimds-signals", daemon=True).start()

    def close(self) -> None:
        signal.set_wakeup_fd(self._old)


def install_signals(flags: dict, reload: bool) -> SignalPipe:
    """The handlers (they only set `flags`: see SignalPipe) and the wake-up pipe; SIGHUP reloads, or is
    ignored (plugin mode: auditd sends SIGHUP to plugins on its own reload)."""

    def on_stop(_signum: int, _frame: Any) -> None:
        flags["stop"] = True

    def on_hup(_signum: int, _frame: Any) -> None:
        flags["reload"] = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup if reload else signal.SIG_IGN)
    return SignalPipe()


class FileWait:
    """Adaptive wake-up (see Cadence): inotify wakes the loop at each write while the log is calm; a busy log
    is read every BUSY_POLL_INTERVAL_S with the watch paused, until its rate has been low a while."""

    def __init__(self, path: str, sigpipe: SignalPipe) -> None:
        from ..source.watch import Waker

        self.waker = Waker(path, log=log)
        sigpipe.forward_to(self.waker.wake)
        self.waker.start()
        self.cadence = Cadence()

    def observe(self, lines: int) -> None:
        self.cadence.observe(lines, time.time())

    def wait(self, timeout: Callable[[], Optional[float]]) -> bool:
        waker = self.waker
        if self.cadence.busy:
            waker.pause()
            waker.wait(BUSY_POLL_INTERVAL_S)
        elif waker.paused:
            waker.resume()  # and look once more: lines may have arrived before the watch was back
        else:
            waker.wait(timeout())
        return True

    def close(self) -> None:
        self.waker.stop()


class StdinWait:
    """select() on the input and the signal pipe; wall-clock timeouts still fire when the stream is quiet."""

    def __init__(self, source: StdinSource, sigpipe: SignalPipe) -> None:
        self.source, self.sigpipe = source, sigpipe

    def observe(self, lines: int) -> None:
        pass

    def wait(self, timeout: Callable[[], Optional[float]]) -> bool:
        try:
            ready, _, _ = select.select([self.source.fd, self.sigpipe.rfd], [], [], timeout())
        except InterruptedError:
            return True
        if self.sigpipe.rfd in ready:
            self.sigpipe.drain()  # the loop sees the flags
            return True
        if not ready:
            return True
        return self.source.fill()

    def close(self) -> None:
        pass
