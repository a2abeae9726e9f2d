"""Wake the follower up when auditd writes, rotates or creates its log (watchdog: inotify, else polling).

The *directory* of the log is watched, not the file: auditd renames the file away on rotation.  Any
creation, modification, close-after-write, move or deletion of `audit.log` or `audit.log.*` sets an
event that `wait()` returns.  Opens and read-only closes are ignored (our own reads must not wake us).

With inotify, an idle agent uses no CPU (watchdog's dispatcher thread wakes every
`INOTIFY_DISPATCH_TIMEOUT` seconds only, to check for a stop request).  When inotify cannot be used
(too many watches or instances, a filesystem without inotify, ...), a `PollingObserver` (every
`poll_interval` seconds) is used instead, and one warning says so.  If the directory does not exist
yet (or is deleted later), it is looked for every `dir_poll_interval` seconds by a small thread, and
watching starts (and `wait()` returns True) once it appears.

Wake-ups are hints: the caller must tolerate spurious ones and should still look at the file now and
then (the follower's `iter_available()` is cheap when nothing changed).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Optional

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

_log = logging.getLogger(__name__)

INOTIFY_DISPATCH_TIMEOUT = 10.0
# "attrib": a chmod/chgrp that fixes a permission problem wakes the follower too
_WAKING_EVENTS = frozenset({"created", "modified", "moved", "deleted", "closed", "attrib"})
MODE_INOTIFY = "inotify"
MODE_POLLING = "polling"
MODE_WAITING = "waiting"  # the directory does not exist (yet): looking for it every dir_poll_interval s
MODE_STOPPED = "stopped"


def _event_filter() -> Optional[list]:
    """Event classes to ask watchdog for (watchdog ≥ 4 narrows the inotify mask with them)."""
    try:
        from watchdog.events import (
            DirDeletedEvent,
            FileClosedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
        )
    except ImportError:  # pragma: no cover - very old watchdog
        return None
    wanted = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
              DirDeletedEvent]
    try:
        from watchdog.events import FileAttribEvent  # watchdog >= 5; before, attrib changes are "modified"

        wanted.append(FileAttribEvent)
    except ImportError:
        pass
    return wanted


class _Handler(FileSystemEventHandler):
    def __init__(self, waker: Waker) -> None:
        super().__init__()
        self._waker = waker

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._waker._on_event(event)


class Waker:
    """Sets an event when the log at `log_path` (or one of its rotated names) changes."""

    def __init__(
        self,
        log_path: str,
        *,
        poll_interval: float = 1.0,
        dir_poll_interval: float = 1.0,
        log: Optional[logging.Logger] = None,
        observer_factory: Optional[Callable[[], Any]] = None,
    ) -> None:
        path = os.path.abspath(os.fspath(log_path))
        self.log_path = path
        self.directory = os.path.dirname(path)
        self._name = os.path.basename(path)
        self._poll_interval = poll_interval
        self._dir_poll_interval = dir_poll_interval
        self._log = log or _log
        self._observer_factory = observer_factory or (lambda: Observer(timeout=INOTIFY_DISPATCH_TIMEOUT))
        self._event = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._observer: Any = None
        self._dir_thread: Optional[threading.Thread] = None
        self._warned_polling = False
        self._paused = False
        self.mode = MODE_STOPPED

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        self._stopping.clear()
        with self._lock:
            if not self._try_watch():
                self._start_dir_wait(old=None)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until woken (True; the event is cleared) or `timeout` seconds pass (False).
        timeout=None waits without limit."""
        woken = self._event.wait(timeout)
        if woken:
            self._event.clear()
        return woken

    def wake(self) -> None:
        """Wake a waiter now (e.g. from a signal handler asking for shutdown or reload)."""
        self._event.set()

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Stop watching while the caller reads on its own cadence (the log is busy).

        Every line auditd writes is one inotify event that watchdog turns into Python objects on its
        threads; under a sustained load that costs more than reading the log a few times a second.  The
        observer keeps running; only the watch is removed.  `wait()` still works as an interruptible sleep.
        """
        with self._lock:
            if self._paused or self._observer is None or self.mode != MODE_INOTIFY:
                return
            try:
                self._observer.unschedule_all()
            except Exception as e:  # noqa: BLE001 - keep watching rather than fail
                self._log.debug("could not pause the watch: %s", e)
                return
            self._paused = True

    def resume(self) -> None:
        """Watch again (the caller must then look at the log once more: it may have changed meanwhile)."""
        with self._lock:
            if not self._paused:
                return
            self._paused = False
            if self._observer is None or self._stopping.is_set():
                return
            try:
                self._schedule(self._observer)
            except OSError as e:
                self._log.warning("could not watch %s again (%s); retrying", self.directory, e.strerror or e)
                self._paused = True

    def stop(self) -> None:
        self._stopping.set()
        self._event.set()
        with self._lock:
            obs, self._observer = self._observer, None
            t = self._dir_thread
            self.mode = MODE_STOPPED
        self._stop_observer(obs)
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)

    def __enter__(self) -> Waker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    def _relevant(self, p: Any) -> bool:
        if not p:
            return False
        name = os.path.basename(os.fsdecode(p))
        return name == self._name or name.startswith(self._name + ".")

    def _on_event(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path) if event.src_path else ""
        if event.is_directory:
            if event.event_type == "deleted" and os.path.normpath(src) == self.directory:
                self._log.warning("directory %s was deleted; waiting for it to come back", self.directory)
                self._event.set()
                with self._lock:
                    if not self._stopping.is_set():
                        obs, self._observer = self._observer, None
                        self._start_dir_wait(old=obs)
            return
        if event.event_type not in _WAKING_EVENTS:
            return
        if self._relevant(src) or self._relevant(getattr(event, "dest_path", "")):
            self._event.set()

    def _schedule(self, observer: Any) -> None:
        handler = _Handler(self)
        flt = _event_filter()
        try:
            observer.schedule(handler, self.directory, recursive=False, event_filter=flt)
        except TypeError:  # watchdog < 4: no event_filter; _on_event filters anyway
            observer.schedule(handler, self.directory, recursive=False)

    def _try_watch(self) -> bool:
        """Start an observer on the directory (inotify, else polling).  Caller holds the lock.
        False if the directory does not exist."""
        if not os.path.isdir(self.directory):
            return False
        try:
            obs = self._observer_factory()
            self._schedule(obs)
            obs.start()
        except OSError as e:
            if not os.path.isdir(self.directory):
                return False
            if not self._warned_polling:
                self._warned_polling = True
                self._log.warning(
                    "inotify cannot watch %s (%s): falling back to polling it every %g s (raise "
                    "fs.inotify.max_user_watches / max_user_instances to get inotify back)",
                    self.directory, e.strerror or e, self._poll_interval)
            try:
                obs = PollingObserver(timeout=self._poll_interval)
                self._schedule(obs)
                obs.start()
            except OSError:
                if not os.path.isdir(self.directory):
                    return False
                raise
            self._observer = obs
            self.mode = MODE_POLLING
            return True
        self._observer = obs
        self.mode = MODE_INOTIFY
        return True

    def _start_dir_wait(self, old: Any) -> None:
        """Caller holds the lock."""
        self.mode = MODE_WAITING
        self._log.warning("directory %s does not exist (yet): checking for it every %g s",
                          self.directory, self._dir_poll_interval)
        t = threading.Thread(target=self._dir_wait, args=(old,), name="auditimds-waker-dir", daemon=True)
        self._dir_thread = t
        t.start()

    def _dir_wait(self, old: Any) -> None:
        self._stop_observer(old)
        while not self._stopping.wait(self._dir_poll_interval):
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    started = self._try_watch()
                except OSError as e:  # pragma: no cover - polling could not start either
                    self._log.error("cannot watch %s: %s", self.directory, e)
                    started = False
                if started:
                    self._dir_thread = None
                    self._log.info("directory %s appeared; watching it (%s)", self.directory, self.mode)
                    self._event.set()
                    return

    @staticmethod
    def _stop_observer(obs: Any) -> None:
        if obs is None:
            return
        try:
            obs.stop()
            if obs is not threading.current_thread():
                obs.join(timeout=5)
        except Exception:  # noqa: BLE001 - shutting down; nothing useful to do
            pass
