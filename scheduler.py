"""APScheduler wiring for `nashra run` (also `python scheduler.py`): jobs and the main loop.

It holds no business logic: each job calls pipeline stages in order.
"""

from __future__ import annotations

import logging
import sys

from apscheduler.schedulers.background import BackgroundScheduler

from feeds.config import Settings
from feeds.pipeline import build_documents, ingest_seeds
from feeds.server import DocumentCache, create_app, make_server
from storage import Storage

log = logging.getLogger("nashra.scheduler")


def refresh(settings: Settings, storage: Storage, cache: DocumentCache | None = None,
            progress: bool = False) -> None:
    """One cycle: ingest the seeds, rebuild the documents whose inputs changed, serve them."""
    ingest_seeds(settings, storage, progress=progress)
    if build_documents(settings, storage) and cache is not None:
        cache.reload()


def create_scheduler(
    settings: Settings, storage: Storage, cache: DocumentCache
) -> BackgroundScheduler:
    """The seeds job every `scan_interval` seconds; a slow pass never overlaps the next."""
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(refresh, "interval", seconds=settings.scan_interval, id="seeds",
                      name="scan seeds and publish", args=(settings, storage, cache),
                      coalesce=True, max_instances=1, misfire_grace_time=None)
    return scheduler


def run(settings: Settings, storage: Storage) -> None:
    """Ingest and publish once, then serve while the scheduler repeats it; Ctrl-C stops."""
    refresh(settings, storage, progress=sys.stderr.isatty())
    cache = DocumentCache(storage)
    scheduler = create_scheduler(settings, storage, cache)
    scheduler.start()
    server = make_server(create_app(cache), settings.host, settings.port)
    log.info("serving %d topics on http://%s:%d/ (seeds every %ds; Ctrl-C to stop)",
             len(settings.topics), settings.host, settings.port, settings.scan_interval)
    try:
        server.run()
    finally:
        scheduler.shutdown(wait=False)
        log.info("stopped")


if __name__ == "__main__":
    from feeds.cli import main

    main(["run", *sys.argv[1:]])
