"""What the agent's outputs (agent/outputs.py) hand alerts to: the notifier's seam, without importing it (the
notifier and apprise are loaded only when notifications are configured).  alerts/notify.py's Notifier is one."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Protocol


class AlertNotifier(Protocol):
    def start(self) -> None:
        """Start delivering (a worker thread); never blocks on the network."""

    def submit(self, alert: Mapping[str, Any]) -> None:
        """Take one alert (an alert taken before is dropped); never raises, never blocks on the network."""

    def stop(self, timeout: float = 5.0) -> None:
        """Stop delivering after at most `timeout` s, the state saved."""

    def counters(self) -> Dict[str, Any]:
        """What was sent, suppressed, spooled... (for the health line and the metrics)."""
