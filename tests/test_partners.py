"""Partners: token access, what they may pull, how their feeds are shaped, limits, /status."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
from contextlib import closing
from urllib.parse import parse_qs, urlsplit

import feedparser
import pytest
import requests
from conftest import SEED_TITLE, Records, run_together, serving

from feeds.model import Partner
from feeds.partners import hash_token, new_token
from feeds.pipeline import build_documents
from feeds.server import create_app
from storage import Storage

PLAIN = {"Accept-Encoding": "identity"}
ARTICLE_URL = "https://news.example.org/story?id=7"


def add_partner(server, name: str, topics=("security",), **fields) -> str:
    """A partner stored as `nashra partners add` stores it; returns its token."""
    token = new_token()
    server.storage.save_partner(Partner(name, hash_token(server.storage.partner_key(), token),
                                        tuple(topics), **fields))
    server.partners.reload()
    return token


def get(server, path: str, **headers) -> requests.Response:
    return requests.get(server.url + path, headers={**PLAIN, **headers}, timeout=10)


def with_linked_article(server, make_article) -> None:
    """A security article with a link (the shipped seed has none), published and served."""
    server.storage.save_articles([make_article("linked", url=ARTICLE_URL, summary="ملخص الخبر")])
    build_documents(server.settings, server.storage)
    server.cache.reload()


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_partner_token_in_the_path_gets_the_topic_feed(live_server, kind):
    token = add_partner(live_server, "daily")

    response = get(live_server, f"/p/{token}/topics/security.{kind}")
    feed = feedparser.parse(response.content)

    assert response.status_code == 200
    assert feed.bozo == 0
    assert SEED_TITLE in {e.title for e in feed.entries}
    assert token.encode() not in response.content  # its self link is the header URL


def test_a_wrong_token_and_a_topic_outside_the_set_look_like_a_missing_topic(live_server):
    add_partner(live_server, "security-only", topics=("security",))
    morocco = add_partner(live_server, "morocco-only", topics=("morocco",))

    wrong = get(live_server, f"/p/{new_token()}/topics/security.atom")
    outside = get(live_server, f"/p/{morocco}/topics/security.atom")
    missing = get(live_server, f"/p/{morocco}/topics/nope.atom")
    wrong_missing = get(live_server, f"/p/{new_token()}/topics/nope.atom")

    assert {r.status_code for r in (wrong, outside, missing, wrong_missing)} == {404}
    assert wrong.content == outside.content
    assert missing.content == wrong_missing.content
    assert morocco.encode() not in outside.content


def test_bearer_header_is_the_alternative_to_the_token_in_the_path(live_server):
    token = add_partner(live_server, "headers")

    good = get(live_server, "/partner/topics/security.atom", Authorization=f"Bearer {token}")
    wrong = get(live_server, "/partner/topics/security.atom",
                Authorization=f"Bearer {new_token()}")
    none = get(live_server, "/partner/topics/security.atom")

    assert good.status_code == 200
    assert SEED_TITLE in {e.title for e in feedparser.parse(good.content).entries}
    assert (wrong.status_code, none.status_code) == (404, 404)
    assert wrong.content == none.content


def test_summary_only_partner_gets_no_full_text(live_server):
    full = add_partner(live_server, "full")
    summaries = add_partner(live_server, "summaries", full_content=False)

    full_entry = feedparser.parse(get(live_server, f"/p/{full}/topics/security.atom").content
                                  ).entries[0]
    short = feedparser.parse(get(live_server, f"/p/{summaries}/topics/security.atom").content)
    entry = short.entries[0]

    assert short.bozo == 0
    assert entry.content[0].value == entry.summary == full_entry.summary
    assert len(entry.content[0].value) < len(full_entry.content[0].value) / 2
    assert 'dir="rtl"' in entry.summary


def test_item_limit_is_applied(live_server, make_article):
    with_linked_article(live_server, make_article)
    token = add_partner(live_server, "one-item", item_limit=1)

    feed = feedparser.parse(get(live_server, f"/p/{token}/topics/security.rss").content)

    assert len(feedparser.parse(get(live_server, "/topics/security.rss").content).entries) == 2
    assert len(feed.entries) == 1


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_utm_parameters_tag_article_links(live_server, make_article, kind):
    with_linked_article(live_server, make_article)
    tagged = add_partner(live_server, "tagged", utm_source="partner-site")
    plain = add_partner(live_server, "plain")

    link = next(e.link for e in feedparser.parse(
        get(live_server, f"/p/{tagged}/topics/security.{kind}").content).entries
        if e.title != SEED_TITLE)
    untouched = {e.link for e in feedparser.parse(
        get(live_server, f"/p/{plain}/topics/security.{kind}").content).entries
        if e.title != SEED_TITLE}

    assert parse_qs(urlsplit(link).query) == {
        "id": ["7"], "utm_source": ["partner-site"], "utm_medium": ["syndication"],
        "utm_campaign": ["security"]}
    assert untouched == {ARTICLE_URL}


def test_partner_feed_follows_its_topic(live_server, make_article):
    token = add_partner(live_server, "follower")
    before = get(live_server, f"/p/{token}/topics/security.atom")

    with_linked_article(live_server, make_article)
    after = get(live_server, f"/p/{token}/topics/security.atom")

    assert after.headers["ETag"] != before.headers["ETag"]
    assert len(feedparser.parse(after.content).entries) == 2


def test_partner_conditional_get_gives_304(live_server):
    token = add_partner(live_server, "polite")
    first = get(live_server, f"/p/{token}/topics/security.atom")

    again = get(live_server, f"/p/{token}/topics/security.atom",
                **{"If-None-Match": first.headers["ETag"]})

    assert again.status_code == 304
    assert "private" in first.headers["Cache-Control"]


def test_rate_limit_answers_429_with_retry_after_and_status_counts_pulls(live_server):
    token = add_partner(live_server, "greedy", rate=2)

    codes = [get(live_server, f"/p/{token}/topics/security.atom") for _ in range(3)]
    status = requests.get(f"{live_server.url}/status.json", timeout=10).json()
    greedy = next(p for p in status["partners"] if p["name"] == "greedy")

    assert [r.status_code for r in codes] == [200, 200, 429]
    assert 0 < int(codes[2].headers["Retry-After"]) <= 30
    assert (greedy["pulls"], greedy["limited"]) == (2, 1)
    assert greedy["last_pull"]
    assert "greedy" in requests.get(f"{live_server.url}/status", timeout=10).text


def _pull(url: str, start, allowed) -> None:
    """One server process taking pulls from the shared bucket, as the partner's requests
    land on it."""
    storage = Storage(url)
    start.wait()
    for _ in range(10):
        if storage.take_pull("shared", 3) == 0:
            with allowed.get_lock():
                allowed.value += 1
    storage.close()


@pytest.mark.both_backends
def test_server_processes_share_a_partners_bucket_and_counts(storage, storage_url):
    """With `--workers N` every process takes from the same bucket: a partner gets its
    rate, not N times it, and /status counts every process's pulls."""
    context = multiprocessing.get_context("spawn")
    start, allowed = context.Barrier(3), context.Value("i", 0)
    run_together([context.Process(target=_pull, args=(storage_url, start, allowed))
                  for _ in range(3)])

    pulls, limited, last = storage.partner_pulls()["shared"]
    assert allowed.value == pulls == 3  # a bucket of 3, refilling one pull every 20 s
    assert limited == 30 - 3 and last is not None
    assert 0 < storage.take_pull("shared", 3) <= 20
    assert storage.take_pull("shared", 60) == 0  # a new rate starts a full bucket
    assert storage.remove_partner("shared") is False  # no such partner, but its usage goes
    assert "shared" not in storage.partner_pulls()


def test_token_never_reaches_the_access_log(live_server):
    token = add_partner(live_server, "logged")
    app = create_app(live_server.cache, partners=live_server.partners)
    records = Records()
    access = logging.getLogger("uvicorn.access")
    with serving(app, access_log=True) as url:
        access.addHandler(records)
        try:
            ok = requests.get(f"{url}/p/{token}/topics/security.atom", timeout=10)
            requests.get(f"{url}/p/{token}x/topics/security.atom", timeout=10)
        finally:
            access.removeHandler(records)

    partner_lines = [m for m in records.messages if "/p/" in m]
    assert ok.status_code == 200
    assert len(partner_lines) == 2
    assert all("/p/[token]/topics/security.atom" in m for m in partner_lines)
    assert not any(token in m for m in records.messages)


def status_codes(url: str, **headers) -> tuple[int, int]:
    return tuple(requests.get(f"{url}{path}", headers=headers, timeout=10).status_code
                 for path in ("/status", "/status.json"))


def test_status_needs_the_admin_token_when_bound_beyond_loopback(live_server):
    public = create_app(live_server.cache, partners=live_server.partners, host="0.0.0.0",
                        admin_token="admin-secret")
    with serving(public) as url:
        assert status_codes(url) == (401, 401)
        assert status_codes(url, Authorization="Bearer wrong") == (401, 401)
        assert status_codes(url, Authorization="Bearer admin-secret") == (200, 200)
    unset = create_app(live_server.cache, partners=live_server.partners, host="example.org")
    with serving(unset) as url:
        assert status_codes(url, Authorization="Bearer ") == (401, 401)
    assert status_codes(live_server.url) == (200, 200)  # bound to 127.0.0.1


def dumped(db_path) -> str:
    """The whole database as SQL (through SQLite: reading the file here would drop its locks)."""
    with closing(sqlite3.connect(db_path)) as db:
        return "\n".join(db.iterdump())


def printed_token(output: str) -> str:
    return output.split("keep it secret): ", 1)[1].split()[0]


def test_partners_commands_add_list_rotate_remove(nashra, config_file, db_path, storage):
    config = ("--config", str(config_file))
    added = nashra("partners", "add", "gazette", "--topic", "security", "--topic", "morocco",
                   "--summary-only", "--limit", "10", "--utm-source", "gazette", *config)
    token = printed_token(added.stdout)
    listed = nashra("partners", "list", *config)
    rotated = nashra("partners", "rotate", "gazette", *config)
    new = printed_token(rotated.stdout)
    [partner] = storage.partners()

    assert added.returncode == 0, added.stderr
    assert f"/p/{token}/topics/morocco.atom" in added.stdout
    assert "gazette  [security,morocco]  summaries, 10 items, utm_source=gazette" in listed.stdout
    assert token not in listed.stdout
    assert token not in dumped(db_path)
    assert new != token
    assert partner.token_hash == hash_token(storage.partner_key(), new)
    assert nashra("partners", "add", "gazette", "--topic", "security", *config).returncode == 1
    assert nashra("partners", "add", "x", "--topic", "nope", *config).returncode == 1
    assert nashra("partners", "remove", "gazette", *config).returncode == 0
    assert storage.partners() == []
    assert nashra("partners", "remove", "gazette", *config).returncode == 1
