"""Feed-source ingest throughput and scheduling at scale, against a local HTTP server.

1. Ingest of N local feeds (default 200): fetch from a server on 127.0.0.1 (a process of its
   own, as the feeds' sites are other machines) + parse + clean + tag + store, as
   `nashra ingest` does it, printed beside bare `feedparser.parse` of the same bytes
   measured in the same run. Target: at least 0.7x bare feedparser.
2. M sources (default 1,000) scheduled by `nashra run`'s Runtime with 16 concurrent
   fetches for a fixed window: polls completed per second and peak memory.

The feeds are the real RTL and odd feeds of ../shared/corpus when present (each served at
several URLs, so every source is distinct), else generated Arabic RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser
import feedparser.api
from corpus import TextMaker, load_words, rss_feed

from feeds.config import load_settings
from feeds.fetch import FetchResult
from feeds.model import Source
from feeds.polling import FeedReader, make_fetcher, poll_all, reader_processes
from feeds.server import DocumentCache
from scheduler import Runtime
from storage import Storage

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
BUFFERED = feedparser.api.PREFERRED_XML_PARSERS[:]  # feeds.parse's SAX driver first
STOCK = [parser for parser in BUFFERED if parser != "feeds.parse"]


def corpus_feeds() -> list[bytes]:
    files = sorted((CORPUS / "feeds-rtl").glob("*")) + sorted((CORPUS / "feeds-oddities").glob("*"))
    return [f.read_bytes() for f in files if f.is_file()]


def generated_feeds(count: int, items: int) -> list[bytes]:
    import random

    rng = random.Random(2026)
    maker = TextMaker(load_words(), rng)
    now = datetime.now(UTC)
    return [rss_feed(n, [(maker.phrase(9), f"https://example.org/{n}/{i}",
                          f"https://example.org/{n}/{i}", now - timedelta(hours=i),
                          maker.phrase(120)) for i in range(items)])
            for n in range(count)]


class FeedServer:
    """Serves /feed/N from memory with ETags, on 127.0.0.1, in a process of its own: the
    feeds' sites are other machines, so serving them must not take Nashra's CPU or GIL."""

    def __init__(self, bodies: list[bytes]):
        ours, theirs = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(bodies, theirs), daemon=True)
        self.process.start()
        self.port = ours.recv()

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.port}/feed/{index}"

    def close(self) -> None:
        self.process.terminate()
        self.process.join()


def _serve(bodies: list[bytes], pipe) -> None:
    tags = [f'"{hashlib.sha1(b).hexdigest()}"' for b in bodies]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            index = int(self.path.rsplit("/", 1)[-1])
            body, tag = bodies[index % len(bodies)], tags[index % len(bodies)]
            if self.headers.get("If-None-Match") == tag:
                self.send_response(304)
                self.send_header("ETag", tag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", tag)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    pipe.send(httpd.server_port)
    httpd.serve_forever()


def settings_for(folder: Path, concurrency: int, interval: int, processes: int | None = None):
    settings = load_settings()
    return replace(settings, storage_url=f"sqlite:///{folder}/nashra.db",
                   seeds_dir=folder / "no-seeds",
                   fetch=replace(settings.fetch, concurrency=concurrency, processes=processes,
                                 min_interval=interval, max_interval=interval))


def reader_peaks() -> list[int]:
    """Peak RSS (KiB) of the forkserver of this process's reader workers
    (feeds.polling.FeedReader's pool), then of each worker, read while they run. A worker's
    count includes the pages it still shares with the forkserver."""
    peaks = []
    for server in children(os.getpid()):
        try:
            if b"forkserver" in Path(f"/proc/{server}/cmdline").read_bytes():
                peaks += [_peak_kib(pid) for pid in (server, *children(server))]
        except (OSError, IndexError):
            continue  # gone meanwhile
    return peaks


def _peak_kib(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("VmHWM:")[1].split()[0])


def children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").glob("*/children")
            for child in task.read_text().split()]


def start_reader_server(body: bytes) -> float:
    """Seconds to start FeedReader's forkserver, which imports what parsing processes need
    once per process (and to read one feed through it)."""
    start = time.perf_counter()
    fetched = FetchResult(url="http://127.0.0.1/", final_url="http://127.0.0.1/", status=200,
                          body=body)
    with FeedReader(load_settings(), processes=1) as reader:
        reader.read(Source(name="warm-up", url=fetched.url), fetched, {}, datetime.now(UTC))
    return time.perf_counter() - start


def bare_feedparser(bodies: list[bytes], parsers: list[str]) -> float:
    """Seconds for `feedparser.parse` of `bodies`, with its defaults and these SAX drivers."""
    feedparser.api.PREFERRED_XML_PARSERS[:] = parsers
    try:
        start = time.perf_counter()
        for body in bodies:
            feedparser.parse(body)
        return time.perf_counter() - start
    finally:
        feedparser.api.PREFERRED_XML_PARSERS[:] = BUFFERED


def add_sources(storage: Storage, server: FeedServer, count: int, interval: int) -> None:
    for n in range(count):
        storage.add_source(Source(name=f"feed-{n:04d}", url=server.url(n),
                                  min_interval=interval, max_interval=interval))


def bench_ingest(bodies: list[bytes], feeds: int, concurrency: int, folder: Path,
                 rounds: int, processes: int | None) -> None:
    """Bare feedparser and Nashra's pipeline (with its parsing processes, then with none)
    take turns, `rounds` times, each into a new database; the best time of each counts, so
    a busy spell of the machine skews none of them."""
    served = [bodies[n % len(bodies)] for n in range(feeds)]
    total_bytes = sum(map(len, served))
    server = FeedServer(bodies)
    best = dict.fromkeys(("bare", "buffered", "pool", "threads"), float("inf"))
    workers = reader_processes(settings_for(folder, concurrency, 3600, processes), feeds)
    server_start = start_reader_server(served[0]) if workers else 0.0
    for round_ in range(rounds):
        best["bare"] = min(best["bare"], bare_feedparser(served, STOCK))
        best["buffered"] = min(best["buffered"], bare_feedparser(served, BUFFERED))
        for run, count in (("pool", processes), ("threads", 0)):
            settings = settings_for(folder / f"{round_}-{run}", concurrency, 3600, count)
            storage = Storage(settings.storage_url)
            add_sources(storage, server, feeds, 3600)
            with make_fetcher(settings) as fetcher:
                start = time.perf_counter()
                reports = poll_all(settings, storage, fetcher)
                best[run] = min(best[run], time.perf_counter() - start)
            stored = storage.article_count()
            storage.close()
    server.close()
    mb, bare = total_bytes / 1e6, best["bare"]
    print(f"ingest of {feeds} local feeds ({mb:.1f} MB, {stored} articles stored, "
          f"{sum(r.new for r in reports)} new), best of {rounds}:")
    print(f"  bare feedparser.parse   {bare:7.2f} s   {mb / bare:6.2f} MB/s  (the baseline)")
    buffered = best["buffered"]
    print(f"  the same, buffered text {buffered:7.2f} s   {mb / buffered:6.2f} MB/s  "
          f"(feeds.parse's expat driver: {bare / buffered:.2f}x)")
    for run, label in (("pool", f"{workers} parsing processes"), ("threads", "threads only")):
        print(f"  nashra pipeline         {best[run]:7.2f} s   {mb / best[run]:6.2f} MB/s  "
              f"({concurrency} concurrent fetches, {label}): {bare / best[run]:.2f}x")
    print(f"  ratio nashra/feedparser throughput: {bare / best['pool']:.2f}x  (target >= 0.7x; "
          f"{os.cpu_count()} cores)")
    if workers:
        print(f"  not timed: the parsing processes' forkserver started in {server_start:.2f} s "
              "(once per nashra ingest or run, as feedparser's import is once per process)")


def bench_schedule(bodies: list[bytes], sources: int, concurrency: int, window: float,
                   folder: Path, processes: int | None) -> None:
    server = FeedServer(bodies)
    interval = 5
    settings = settings_for(folder, concurrency, interval, processes)
    storage = Storage(settings.storage_url)
    add_sources(storage, server, sources, interval)
    now = datetime.now(UTC)
    for source in storage.sources():  # all due now, as after a long downtime
        storage.save_source_state(replace(source, next_poll=now))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runtime = Runtime(settings, storage, DocumentCache(storage))
    runtime.start()
    try:
        deadline = time.monotonic() + 60
        while len(runtime.scheduler.get_jobs()) < sources + 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        first = runtime.polls
        time.sleep(window)
        polls = runtime.polls - first
        workers = reader_peaks()
    finally:
        runtime.stop()
        deadline = time.monotonic() + 30
        while runtime.fetching and time.monotonic() < deadline:  # polls still running
            time.sleep(0.1)
        server.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    errors = sum(1 for s in storage.sources() if s.error_count)
    storage.close()
    print(f"{sources} sources scheduled, {concurrency} concurrent fetches, {window:.0f} s window:")
    print(f"  polls completed: {polls}  ->  {polls / window:.1f} polls/s  ({errors} sources "
          "in error)")
    print(f"  peak RSS: {peak / 1024:.0f} MB (before the scheduler: {rss_before / 1024:.0f} MB)"
          f"; parsing processes: {len(workers[1:])}, {sum(workers[1:]) / 1024:.0f} MB together, "
          f"forked from a forkserver of {sum(workers[:1]) / 1024:.0f} MB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=200, help="feeds for the ingest benchmark")
    parser.add_argument("--sources", type=int, default=1000, help="sources to schedule (0: skip)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent fetches")
    parser.add_argument("--rounds", type=int, default=3,
                        help="turns of feedparser and the pipeline; the best of each counts")
    parser.add_argument("--window", type=float, default=30, help="seconds of scheduling measured")
    parser.add_argument("--processes", type=int, default=None,
                        help="parsing processes ([fetch] processes; default: auto)")
    parser.add_argument("--generated", action="store_true",
                        help="use generated feeds even when the shared corpus is present")
    args = parser.parse_args(argv)
    bodies = [] if args.generated or not CORPUS.is_dir() else corpus_feeds()
    origin = "shared corpus feeds-rtl + feeds-oddities"
    if not bodies:
        bodies, origin = generated_feeds(50, 20), "generated Arabic RSS (50 feeds x 20 items)"
    print(f"feeds: {origin}, {len(bodies)} distinct bodies; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        bench_ingest(bodies, args.feeds, args.concurrency, Path(one), args.rounds,
                     args.processes)
        if args.sources:
            bench_schedule(bodies, args.sources, args.concurrency, args.window, Path(two),
                           args.processes)


if __name__ == "__main__":
    main()
