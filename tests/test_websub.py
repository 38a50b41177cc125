"""WebSub: hub and self links in every feed, publish pings to a real local hub, retries."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from urllib.parse import parse_qs

import feedparser
import pytest
from werkzeug import Request, Response

from feeds.model import Partner
from feeds.partners import syndication
from feeds.pipeline import build_documents, ingest_seeds
from feeds.publish import build_topic
from feeds.websub import HubPinger, changed_feed_urls

HUB = "https://hub.example.org/"


@pytest.fixture
def hubbed(settings):
    return replace(settings, websub_hub=HUB)


def published(settings, storage) -> dict[str, bytes]:
    ingest_seeds(settings, storage)
    return {d.path: d.body for d in build_documents(settings, storage)}


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the hub was not pinged in time"
        time.sleep(0.02)


def pings(httpserver) -> list[dict[str, list[str]]]:
    return [parse_qs(request.get_data(as_text=True)) for request, _ in httpserver.log]


def test_every_feed_names_the_hub_and_itself(hubbed, storage):
    docs = published(hubbed, storage)
    base = hubbed.base_url

    for kind in ("rss", "atom"):
        links = {(link.rel, link.href) for link in feedparser.parse(
            docs[f"topics/security.{kind}"]).feed.links}
        assert ("hub", HUB) in links, kind
        assert ("self", f"{base}/topics/security.{kind}") in links, kind
    feed = json.loads(docs["topics/security.json"])
    assert feed["hubs"] == [{"type": "WebSub", "url": HUB}]
    assert feed["feed_url"] == f"{base}/topics/security.json"


def test_no_hub_link_without_a_hub_nor_in_partner_feeds(settings, hubbed, storage):
    plain = published(settings, storage)
    partner = Partner("p", "hash", ("security",))
    private = build_topic(hubbed, hubbed.topic("security"), storage.articles("security"),
                          storage.created, syndication=syndication(partner, "security"))

    for body in [plain["topics/security.atom"], *(d.body for d in private)]:
        assert b'rel="hub"' not in body and b'"hubs"' not in body


def test_changed_feeds_are_pinged_to_the_hub(settings, storage, httpserver):
    httpserver.expect_request("/hub", method="POST").respond_with_data("", status=204)
    hub = httpserver.url_for("/hub")
    changed = build_documents(replace(settings, websub_hub=hub), storage)

    pinger = HubPinger(hub)
    pinger.publish(changed_feed_urls(settings.base_url, changed))
    pinger.close()

    [form] = pings(httpserver)
    assert form["hub.mode"] == ["publish"]
    assert f"{settings.base_url}/topics/security.atom" in form["hub.url"]
    assert f"{settings.base_url}/topics/security.json" in form["hub.url"]
    assert not any(url.endswith((".html", ".opml", ".xsl")) for url in form["hub.url"])


def test_a_failing_hub_is_retried_until_it_accepts(httpserver):
    for _ in range(2):
        httpserver.expect_ordered_request("/hub").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/hub").respond_with_data("", status=202)
    pinger = HubPinger(httpserver.url_for("/hub"), first_delay=0.01)

    pinger.publish(["http://127.0.0.1/topics/security.atom"])
    wait_for(lambda: len(httpserver.log) == 3)
    pinger.close()

    assert [response.status_code for _, response in httpserver.log] == [503, 503, 202]
    assert all(form["hub.url"] == ["http://127.0.0.1/topics/security.atom"]
               for form in pings(httpserver))


def test_a_hub_that_keeps_failing_is_given_up_on(httpserver):
    httpserver.expect_request("/hub").respond_with_data("down", status=500)
    pinger = HubPinger(httpserver.url_for("/hub"), attempts=3, first_delay=0.01)

    pinger.publish(["http://127.0.0.1/topics/security.atom"])
    wait_for(lambda: len(httpserver.log) == 3)
    pinger.close()

    assert len(httpserver.log) == 3


def test_publishing_does_not_wait_for_the_hub(httpserver):
    answer = threading.Event()
    order = []

    def slow_hub(request: Request) -> Response:
        answer.wait(timeout=30)
        order.append("hub answered")
        return Response("", status=204)

    httpserver.expect_request("/hub").respond_with_handler(slow_hub)
    pinger = HubPinger(httpserver.url_for("/hub"))

    pinger.publish(["http://127.0.0.1/topics/security.atom"])
    order.append("publish returned")
    answer.set()
    pinger.close()

    assert order == ["publish returned", "hub answered"]
