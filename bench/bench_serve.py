"""Serving benchmark: Nashra's server beside nginx serving the same bytes from disk.

    python bench/bench_serve.py                   # ~1 min: 2 and 32 connections, 200 and 304
    python bench/bench_serve.py --duration 10     # longer runs
    python bench/bench_serve.py --workers 2       # two server processes, and two nginx workers

A 100-item topic feed (Atom, about 0.5 MB, built by Nashra from generated Arabic articles
in a real SQLite file) is served two ways on 127.0.0.1: by `nashra run` (uvicorn with
httptools and uvloop, the bytes pre-rendered in memory and answered by the fast path
before Starlette) and by nginx (sendfile) from the file `nashra build --out` writes, each
with the same number of processes. After a 2 s warm-up (every worker up), wrk (Debian's
packages) loads each for the same time at 2 and 32 connections, asking for the full body
(200) and then conditionally with the current ETag (304). It prints requests per second,
the ratio nashra/nginx (target: at least 0.5x for 200 and 304), the p99 latency and each
server's CPU time per request (all its processes, from /proc).
Needs the `nginx` and `wrk` commands; without them it says so and stops.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_publish import make_articles, make_topics
from corpus import load_words

from feeds.config import load_settings
from feeds.pipeline import build_documents, write_documents
from storage import Storage

FEED = "/topics/{slug}.atom"
TARGET = 0.5
NGINX_CONF = """worker_processes {workers};
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    types {{ application/atom+xml atom; }}
    server {{ listen 127.0.0.1:{port}; root {folder}/out; }}
}}
"""


def prepare(folder: Path, articles: int) -> tuple[str, Path]:
    """A database with one 100-item topic built, and its static files; the feed's path."""
    topic = make_topics(1)[0]
    settings = replace(load_settings(), topics=(topic,), items_per_feed=100,
                       storage_url=f"sqlite:///{folder / 'serve.db'}",
                       seeds_dir=folder / "seeds")
    settings.seeds_dir.mkdir()
    storage = Storage(settings.storage_url)
    try:
        for start in range(0, articles, 500):
            batch = make_articles(min(500, articles - start), [topic.slug], load_words(), 300,
                                  seed=start)
            storage.save_articles(batch)
        build_documents(settings, storage)
        write_documents(storage.documents(), folder / "out")
    finally:
        storage.close()
    config = folder / "nashra.toml"
    config.write_text(f'[storage]\nurl = "{settings.storage_url}"\n[seeds]\ndir = '
                      f'"{settings.seeds_dir}"\n' + _topics_toml(topic), "utf-8")
    return FEED.format(slug=topic.slug), config


def _topics_toml(topic) -> str:
    titles = ", ".join(f'{k} = "{v}"' for k, v in topic.titles.items())
    descriptions = ", ".join(f'{k} = "{v}"' for k, v in topic.descriptions.items())
    return (f'[publish]\nitems_per_feed = 100\n[[topics]]\nslug = "{topic.slug}"\n'
            f'language = "{topic.language}"\ntitle = {{ {titles} }}\n'
            f'description = {{ {descriptions} }}\nterms = ["{topic.slug}"]\n')


def wait_for(url: str, timeout: float = 60.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def wrk(url: str, connections: int, seconds: int, etag: str | None
        ) -> tuple[float, str, int]:
    """Requests per second, the p99 latency and the requests, from one wrk run on one thread."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if etag:
        command[1:1] = ["-H", f"If-None-Match: {etag}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99 = re.search(r"^\s*99%\s+(\S+)", output, re.MULTILINE).group(1)  # not a "98.99%"
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise SystemExit(f"{url}: {non_2xx.group(1)} error responses under load")
    return rate, p99, int(re.search(r"(\d+) requests in", output).group(1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and every process under it (Linux /proc).

    Steadier than requests a second on a shared VM: other work slows a server down but
    adds little to what each of its requests costs.
    """
    parents, times = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        times[child] = int(fields[11]) + int(fields[12])
    tree, grown = {pid}, {pid}
    while grown:
        grown = {child for child, parent in parents.items() if parent in grown}
        tree |= grown
    return sum(times.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def load(url: str, pid: int, connections: int, seconds: int, etag: str | None
         ) -> tuple[float, str, float]:
    """Requests per second, p99 latency and the server's CPU microseconds a request."""
    before = cpu_seconds(pid)
    rate, p99, requests_done = wrk(url, connections, seconds, etag)
    return rate, p99, (cpu_seconds(pid) - before) / requests_done * 1e6


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2000, help="stored articles")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes of each server (nashra run --workers, nginx's)")
    args = parser.parse_args()
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"needs {' and '.join(missing)}: apt-get install nginx-light wrk")

    folder = Path(tempfile.mkdtemp(prefix="nashra-bench-serve-"))
    folder.chmod(0o755)  # nginx's workers run as another user
    path, config = prepare(folder, args.articles)
    nashra_port, nginx_port = free_port(), free_port()
    nginx_conf = NGINX_CONF.format(folder=folder, port=nginx_port, workers=args.workers)
    (folder / "nginx.conf").write_text(nginx_conf)
    nashra = subprocess.Popen([str(Path(sys.executable).parent / "nashra"), "-q", "--config",
                               str(config), "run", "--port", str(nashra_port),
                               "--workers", str(args.workers)],
                              cwd=folder, stdout=subprocess.DEVNULL,
                              stderr=(folder / "nashra.log").open("w"))
    nginx = subprocess.Popen(["nginx", "-c", str(folder / "nginx.conf"), "-p", str(folder)],
                             stderr=subprocess.DEVNULL)
    try:
        servers = {"nashra": f"http://127.0.0.1:{nashra_port}{path}",
                   "nginx": f"http://127.0.0.1:{nginx_port}{path}"}
        pids = {"nashra": nashra.pid, "nginx": nginx.pid}
        etags = {name: wait_for(url).headers["ETag"] for name, url in servers.items()}
        size = len(wait_for(servers["nginx"]).content)
        for url in servers.values():
            wrk(url, 2, 2, None)
        print(f"one {size / 1e3:,.0f} KB Atom feed of 100 items; {args.workers} process(es) "
              f"each; wrk, 1 thread, {args.duration} s a run; loopback, 2 cores shared by wrk "
              "and the server")
        for status, conditional in (("200", False), ("304", True)):
            for connections in (2, 32):
                rates = {name: load(url, pids[name], connections, args.duration,
                                    etags[name] if conditional else None)
                         for name, url in servers.items()}
                ratio = rates["nashra"][0] / rates["nginx"][0]
                line = "   ".join(f"{name} {rate:>7,.0f} req/s (p99 {p99:>8}, cpu {cpu:>4.0f} µs)"
                                   for name, (rate, p99, cpu) in rates.items())
                print(f"  {status}, {connections:>2} connections:  {line}   ratio {ratio:.2f}x "
                      f"(target >= {TARGET}x: {'met' if ratio >= TARGET else 'NOT MET'})")
    finally:
        nashra.terminate()
        nginx.terminate()
        nashra.wait(timeout=30)
        nginx.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
