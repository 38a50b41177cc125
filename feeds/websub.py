"""WebSub publishing: tell the configured hub which topic feeds changed.

Pings go out from a thread of their own, so publishing never waits for the hub; a hub
that fails or cannot be reached is retried with exponential backoff, then given up on
until the next change (subscribers still poll).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Sequence

import requests

from feeds import __version__
from feeds.model import Document

log = logging.getLogger("nashra.websub")

ATTEMPTS = 5
FIRST_DELAY = 2.0  # seconds before the first retry; doubled after each failure
TIMEOUT = 10.0


def changed_feed_urls(base_url: str, documents: Iterable[Document]) -> list[str]:
    """The public topic feeds (not archive pages) among freshly built `documents`, as URLs."""
    return [f"{base_url}/{d.path}" for d in documents
            if d.path.startswith("topics/") and d.path.count("/") == 1]


class HubPinger:
    """Sends WebSub publish pings (`hub.mode=publish`, one `hub.url` per feed) to `hub`."""

    def __init__(self, hub: str, attempts: int = ATTEMPTS, first_delay: float = FIRST_DELAY):
        self.hub, self.attempts, self.first_delay = hub, attempts, first_delay
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"Nashra/{__version__} (WebSub publisher)"
        self._queue: queue.Queue[Sequence[str] | None] = queue.Queue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="websub", daemon=True)
        self._thread.start()

    def publish(self, urls: Sequence[str]) -> None:
        """Queue a ping for `urls` and return at once."""
        if urls:
            self._queue.put(list(urls))

    def close(self) -> None:
        """Send what is queued (retries cut short), then stop."""
        self._queue.put(None)
        self._closing.set()
        self._thread.join()
        self._session.close()

    def _run(self) -> None:
        while (urls := self._queue.get()) is not None:
            self._ping(urls)

    def _ping(self, urls: Sequence[str]) -> None:
        form = [("hub.mode", "publish"), *(("hub.url", url) for url in urls)]
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            problem = self._send(form)
            if problem is None:
                log.info("websub: %s told of %d changed feeds", self.hub, len(urls))
                return
            log.warning("websub: ping %d/%d to %s failed: %s", attempt, self.attempts,
                        self.hub, problem)
            if attempt == self.attempts or self._closing.wait(delay):
                break
            delay *= 2
        log.warning("websub: %s not told of %d changed feeds; subscribers will poll",
                    self.hub, len(urls))

    def _send(self, form: list[tuple[str, str]]) -> str | None:
        """None when the hub accepted the ping (2xx), else what went wrong."""
        try:
            response = self._session.post(self.hub, data=form, timeout=TIMEOUT)
        except requests.RequestException as exc:
            return str(exc)
        return None if response.ok else f"HTTP {response.status_code}"
