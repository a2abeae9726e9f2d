"""Tell systemd how the service is doing (`Type=notify`): the sd_notify(3) datagram, without libsystemd.

Why: with `Type=exec`, systemd counts the service as started as soon as the interpreter is executed, a
second before the agent has installed its signal handlers. A `systemctl reload` (SIGHUP) in that second ended
the agent the default way, which systemd counts as a clean exit: the service was gone, "Deactivated
successfully". With `Type=notify`, `systemctl start` returns, and a reload is sent, only after READY=1, which
the agent sends once its handlers are in place and its state is loaded.

The protocol (sd_notify(3)): one datagram of newline-separated `KEY=value` assignments on the AF_UNIX socket
named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). Without $NOTIFY_SOCKET (not under
systemd, or `Type=` is not notify) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Mapping, Optional

log = logging.getLogger("auditimds")


class Notifier:
    """Sends states to the socket named by the environment at construction (None: a no-op)."""

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        env = os.environ if environ is None else environ
        self.name = addr = env.get("NOTIFY_SOCKET", "")
        self.address: Optional[str] = None
        if addr.startswith("@"):
            self.address = "\0" + addr[1:]
        elif addr.startswith("/"):
            self.address = addr
        elif addr:
            log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract name: systemd is not told", addr)
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send `KEY=value` lines in one datagram; False (and one warning for the life of the process) when it
        could not be sent: the service keeps running, systemd may time its start-up out."""
        if self.address is None:
            return False
        payload = "\n".join(assignments).encode("utf-8", "backslashreplace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(payload, self.address)
        except OSError as e:
            if not self._failed:
                log.warning("cannot notify systemd on %s: %s", self.name, e)
            self._failed = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", "STATUS=" + status.replace("\n", " "))

    def reloading(self) -> bool:
        return self.send("RELOADING=1", "STATUS=reloading the configuration")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping: flushing and writing the checkpoint")
