"""Plan and discrepancy events for the server-sent-events stream: a bounded, sequence-numbered log."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

MAX_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    kind: str
    at: float
    data: dict[str, Any]

    def sse(self) -> str:
        body = json.dumps({"seq": self.seq, "at": self.at, **self.data}, separators=(",", ":"))
        return f"id: {self.seq}\nevent: {self.kind}\ndata: {body}\n\n"


class EventLog:
    def __init__(self, capacity: int = MAX_EVENTS) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._seq = 0
        self._lock = threading.Lock()

    def publish(self, kind: str, at: float, data: dict[str, Any]) -> Event:
        with self._lock:
            self._seq += 1
            event = Event(self._seq, kind, at, data)
            self._events.append(event)
        return event

    def after(self, seq: int) -> list[Event]:
        with self._lock:
            return [e for e in self._events if e.seq > seq]

    @property
    def last_seq(self) -> int:
        return self._seq
