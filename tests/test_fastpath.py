"""The fast path in front of Starlette (the protocol that answers stored documents itself,
and the ASGI layer), the cache's refresh, and `--workers N`."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import feedparser
import pytest
import requests
from click.testing import CliRunner
from conftest import (
    NASHRA,
    Records,
    config_text,
    free_port,
    nashra_env,
    serving,
    wait_until_answers,
)

from feeds.cli import cli
from feeds.config import ConfigError, parse_settings
from feeds.pipeline import build_documents
from feeds.server import DocumentCache, create_app

VALIDATORS = ("ETag", "Last-Modified", "Cache-Control", "Vary")
FRESH_TITLE = "الشرطة تفكك خلية إرهابية جديدة في طنجة"
SECRET = "not-a-real-token-but-secret-anyway"


@pytest.mark.parametrize("path", ["/topics/security.rss", "/topics/security.json", "/"])
@pytest.mark.parametrize("encoding", ["identity", "gzip", "br"])
def test_a_304_repeats_the_200s_validators_and_cache_headers(live_server, path, encoding):
    url = live_server.url + path
    full = requests.get(url, headers={"Accept-Encoding": encoding}, timeout=5)

    again = requests.get(url, timeout=5, headers={"Accept-Encoding": encoding,
                                                  "If-None-Match": full.headers["ETag"]})

    assert (full.status_code, again.status_code, again.content) == (200, 304, b"")
    assert {h: again.headers[h] for h in VALIDATORS} == {h: full.headers[h] for h in VALIDATORS}
    assert "Content-Encoding" not in again.headers and "Content-Type" not in again.headers


def test_head_with_the_current_etag_is_304(live_server):
    url = live_server.url + "/topics/security.atom"
    etag = requests.get(url, timeout=5).headers["ETag"]

    head = requests.head(url, headers={"If-None-Match": etag}, timeout=5)

    assert (head.status_code, head.content) == (304, b"")


def test_a_browser_gets_the_xml_type_and_the_same_validators(live_server):
    url = live_server.url + "/topics/security.atom"
    reader = requests.get(url, timeout=5)

    browser = requests.get(url, headers={"Accept": "text/html,*/*;q=0.8"}, timeout=5)

    assert browser.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert reader.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert browser.headers["ETag"] == reader.headers["ETag"]


def test_what_the_fast_path_does_not_serve_reaches_starlette(live_server):
    post = requests.post(live_server.url + "/topics/security.rss", timeout=5)
    missing = requests.get(live_server.url + "/topics/nope.rss", timeout=5)

    assert post.status_code == 405
    assert missing.status_code == 404 and "nope.rss" in missing.text


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def read_response(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response off `stream` (a body only as long as its content-length)."""
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, stream.read(int(headers.get("content-length", 0)))


def test_pipelined_requests_are_answered_in_order_whichever_path_answers(live_server):
    """Stored documents are answered by the protocol, the rest by the app: a document asked
    for behind a slower request must wait for it, not overtake it."""
    paths = ["/topics/security.atom", "/status.json", "/topics/security.rss", "/nope.rss",
             "/topics/security.json"]
    with connect(live_server.url) as sock, sock.makefile("rb") as stream:
        sock.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in paths))
        responses = [read_response(stream) for _ in paths]

    assert [status for status, _, _ in responses] == [200, 200, 200, 404, 200]
    assert [h["content-type"].split(";")[0] for _, h, _ in responses] == [
        "application/atom+xml", "application/json", "application/rss+xml", "text/html",
        "application/feed+json"]
    for path, (_, headers, body) in zip(paths, responses, strict=True):
        if path.startswith("/topics/"):
            assert body == requests.get(live_server.url + path, timeout=5).content
            assert headers["etag"] and headers["date"]


def test_http_1_0_gets_its_answer_and_the_connection_closes(live_server):
    with connect(live_server.url) as sock, sock.makefile("rb") as stream:
        sock.sendall(b"GET /topics/security.rss HTTP/1.0\r\n\r\n")
        status, headers, body = read_response(stream)
        rest = stream.read()

    assert status == 200 and headers["connection"] == "close"
    assert feedparser.parse(body).bozo == 0
    assert rest == b""


def test_a_busy_connection_stays_open_and_an_idle_one_closes_after_the_timeout(live_server):
    etag = requests.get(live_server.url + "/topics/security.rss", timeout=5).headers["ETag"]
    request = (f"GET /topics/security.rss HTTP/1.1\r\nHost: x\r\n"
               f"If-None-Match: {etag}\r\n\r\n").encode()
    with serving(create_app(live_server.cache), timeout_keep_alive=1) as url, \
            connect(url) as sock, sock.makefile("rb") as stream:
        for _ in range(6):  # 2.4 s of requests 0.4 s apart: never idle for the timeout
            sock.sendall(request)
            assert read_response(stream)[0] == 304
            time.sleep(0.4)
        sock.sendall(request)
        assert read_response(stream)[0] == 304
        time.sleep(1.6)
        assert stream.read() == b""  # closed by the server


def test_answers_from_the_protocol_are_in_the_access_log_with_the_forwarded_client(
        live_server):
    records = Records()
    access = logging.getLogger("uvicorn.access")
    with serving(create_app(live_server.cache), access_log=True) as url:
        access.addHandler(records)
        try:
            etag = requests.get(url + "/topics/security.rss?utm=x", timeout=5).headers["ETag"]
            requests.get(url + "/topics/security.rss", headers={"If-None-Match": etag},
                         timeout=5)
            requests.get(url + "/topics/security.atom", timeout=5,
                         headers={"X-Forwarded-For": "203.0.113.7"})  # from a trusted proxy
        finally:
            access.removeHandler(records)

    assert any('"GET /topics/security.rss?utm=x HTTP/1.1" 200' in m for m in records.messages)
    assert any('"GET /topics/security.rss HTTP/1.1" 304' in m for m in records.messages)
    assert any(m.startswith("203.0.113.7:") and "/topics/security.atom" in m
               for m in records.messages)


def test_refresh_reloads_after_a_build_and_keeps_unchanged_documents(settings, storage,
                                                                     make_article):
    build_documents(settings, storage)
    cache = DocumentCache(storage)
    feed, opml = cache.get("topics/security.atom"), cache.get("topics.opml")

    cache.refresh()
    unchanged = cache.get("topics/security.atom")
    storage.save_articles([make_article("fresh", title=FRESH_TITLE)])
    build_documents(settings, storage)
    cache.refresh()

    assert unchanged is feed
    assert cache.get("topics/security.atom").document.etag != feed.document.etag
    assert cache.get("topics.opml").compressed is opml.compressed


@pytest.mark.parametrize(("value", "problem"), [
    ("0", "server.workers: must be a positive whole number, not 0"),
    ('"two"', "server.workers: must be a whole number, not 'two'"),
])
def test_a_bad_workers_value_is_a_config_error_naming_the_key(value, problem):
    with pytest.raises(ConfigError, match=re.escape(problem)):
        parse_settings(f"[server]\nworkers = {value}\n", "test.toml")


def test_workers_come_from_config_and_the_command_line_wins():
    settings = parse_settings("[server]\nworkers = 3\n", "test.toml")

    assert parse_settings("", "test.toml").server_workers == 1
    assert settings.server_workers == 3
    assert settings.with_server(None, None, 2).server_workers == 2
    assert settings.with_server(None, None).server_workers == 3


def test_workers_below_one_is_refused_on_the_command_line():
    result = CliRunner().invoke(cli, ["run", "--workers", "0"])

    assert result.exit_code == 2
    assert "--workers" in result.output


def worker_pids(parent: int) -> list[int]:
    """The multiprocessing children of `parent` (uvicorn's workers), from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in command:
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_run_with_workers_serves_from_that_many_processes_and_follows_builds(
        tmp_path, db_path, seeds_dir, write_seed):
    config = tmp_path / "nashra.toml"
    text = config_text(db_path, seeds_dir, scan_interval=1)
    config.write_text(text.replace("access_log = false", "access_log = true"), "utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}/topics/security.atom"
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(NASHRA), "--config", str(config), "run", "--port",
                                    str(port), "--workers", "2"], cwd=tmp_path,
                                   env=nashra_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        first = wait_until_answers(url, timeout=60, process=process)
        again = requests.get(url, headers={"If-None-Match": first.headers["ETag"]}, timeout=5)
        requests.get(f"http://127.0.0.1:{port}/p/{SECRET}/topics/security.atom", timeout=5)
        write_seed("fresh.txt", f"{FRESH_TITLE}\n\nأعلنت الشرطة تفكيك خلية إرهابية في طنجة.\n")

        titles = set()
        for _ in range(60):  # a scan, a build (every 5 s), then each worker's refresh (5 s)
            titles = {e.title for e in feedparser.parse(requests.get(url, timeout=5).content)
                      .entries}
            if FRESH_TITLE in titles:
                break
            time.sleep(0.5)

        assert len(worker_pids(process.pid)) == 2
        assert again.status_code == 304
        assert FRESH_TITLE in titles
    finally:
        process.terminate()
        process.wait(timeout=30)
    logged = log.read_text("utf-8")
    assert "/p/[token]/topics/security.atom" in logged  # each worker redacts its access log
    assert SECRET not in logged
