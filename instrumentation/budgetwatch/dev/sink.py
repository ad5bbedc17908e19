"""Where Alertmanager's webhooks go in the dev stack: a small real HTTP receiver that keeps
every notification (webhook payload version 4: `status`, `groupLabels`, `alerts[]` with
`labels`, `annotations`, `status`) in arrival order, so a test can assert "exactly once"."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..spec import AGENT


@dataclass
class Notification:
    received_at: float
    path: str
    payload: dict[str, Any]

    @property
    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.payload.get("alerts", [])
        return alerts


@dataclass
class NotificationSink:
    """A webhook receiver on 127.0.0.1:<free port> keeping every Alertmanager notification
    (webhook payload version 4) in arrival order; `url` is what `webhook_configs` needs."""

    path: str = "/alerts"
    notifications: list[Notification] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        assert self._server is not None, "receiver not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> NotificationSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with sink._lock:
                    sink.notifications.append(Notification(time.time(), self.path, payload))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the output readable

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> NotificationSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)

    def payloads(self) -> list[dict[str, Any]]:
        """The JSON documents received so far, in arrival order."""
        return [note.payload for note in self.snapshot()]

    def firing(self) -> Iterator[tuple[Notification, dict[str, Any]]]:
        """Every (notification, alert) pair whose alert was firing when it was sent."""
        for note in self.snapshot():
            for alert in note.alerts:
                if alert.get("status") == "firing":
                    yield note, alert

    def firing_names(self) -> list[str]:
        """`alertname{agent}` of every firing alert notified, in arrival order."""
        return [
            f"{a['labels'].get('alertname')}{{{a['labels'].get(AGENT, '')}}}"
            for _, a in self.firing()
        ]

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        """The first firing alert that `match` accepts; TimeoutError naming what arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, alert in self.firing():
                if match(alert):
                    return alert
            time.sleep(0.25)
        seen = [a.get("labels") for _, a in self.firing()]
        raise TimeoutError(f"no notification for {what} within {timeout}s; received: {seen}")
