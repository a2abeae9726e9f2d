"""Real notification receivers on 127.0.0.1 for the notification tests: HTTP (JSON/Slack/Mattermost
webhooks) and SMTP (aiosmtpd).  Only loopback; every wait has a deadline."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what or cond}")
        time.sleep(interval)


class HttpReceiver:
    """Records every POST (path, headers, body).  `status` is the reply code; stop()/start() simulate an
    outage on the same port."""

    def __init__(self, port: Optional[int] = None) -> None:
        self.port = port or free_port()
        self.requests: List[Dict[str, Any]] = []
        self.status = 200
        self.partial = 0  # requests whose body ended early (the sender was killed): not recorded
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "HttpReceiver":
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                if len(body) < n:  # the sender died mid-request: not a delivery (a real server drops it too)
                    recv.partial += 1
                    return
                with recv._lock:
                    recv.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                          "at": time.time()})
                self.send_response(recv.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_a: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                if not isinstance(sys.exc_info()[1], ConnectionError):  # a sender killed mid-reply: quiet
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def json_bodies(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [json.loads(r["body"]) for r in self.requests]

    def __enter__(self) -> "HttpReceiver":
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1 recording each message (envelope and parsed email.message.Message)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.messages: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        recv = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                import email
                from email import policy

                msg = email.message_from_bytes(envelope.content, policy=policy.compat32)
                with recv._lock:
                    recv.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                          "raw": envelope.content, "msg": msg})
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def url(self, **extra: str) -> str:
        q = "&".join(f"{k}={v}" for k, v in extra.items())
        return (f"mailtos://127.0.0.1:{self.port}?smtp=127.0.0.1&mode=insecure&from=auditimds@example.test"
                f"&to=ops@example.test" + (f"&{q}" if q else ""))

    def __enter__(self) -> "SmtpReceiver":
        self._controller.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._controller.stop()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.messages)
