"""Partners: sites that pull topic feeds with a secret token, each shaped and rate-limited.

A token is shown once (`nashra partners add|rotate`) and only its keyed hash is stored.
Every lookup hashes the presented token and compares it with each partner's hash in
constant time, and a wrong token, a topic outside the partner's set and a missing topic
all look the same to the client.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from feeds.config import Settings
from feeds.model import Partner
from feeds.publish import FEED_KINDS, Syndication, build_topic, feed_path
from feeds.server import PARTNER_PREFIX, DocumentCache, Served
from storage import Storage


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(key: bytes, token: str) -> str:
    return hmac.new(key, token.encode("utf-8"), hashlib.sha256).hexdigest()


def syndication(partner: Partner, slug: str) -> Syndication:
    params = ()
    if partner.utm_source:
        params = (("utm_source", partner.utm_source), ("utm_medium", "syndication"),
                  ("utm_campaign", slug))
    return Syndication(summary_only=not partner.full_content, link_params=params,
                       prefix=PARTNER_PREFIX)


@dataclass
class TokenBucket:
    """`rate` pulls a minute, in bursts of up to `rate`."""

    rate: int
    tokens: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.rate)

    def take(self) -> int:
        """0 when a pull may go ahead (and is counted), else the seconds to wait."""
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate / 60)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0
        return math.ceil((1 - self.tokens) * 60 / self.rate)


@dataclass
class Pulls:
    """What one partner did since the server started, for /status."""

    bucket: TokenBucket
    count: int = 0
    limited: int = 0
    last: datetime | None = None


class PartnerDesk:
    """The partners' side of the server: who a token is, what they may pull, their feeds.

    Partner feeds are built on first pull from the same stored articles as the public
    ones, and rebuilt when the topic's public feed changed.
    """

    def __init__(self, settings: Settings, storage: Storage, cache: DocumentCache):
        self.settings, self.storage, self.cache = settings, storage, cache
        self._key = storage.partner_key()
        self._lock = threading.Lock()
        self._partners: tuple[Partner, ...] = ()
        self._pulls: dict[str, Pulls] = {}
        self._built: dict[tuple[str, str], Served] = {}
        self.reload()

    def reload(self) -> None:
        """Read the partners again (added, rotated or removed while serving)."""
        partners = tuple(self.storage.partners())
        with self._lock:
            self._partners = partners
            self._pulls = {p.name: self._kept_pulls(p) for p in partners}
            self._built = {k: v for k, v in self._built.items() if k[0] in self._pulls}

    def _kept_pulls(self, partner: Partner) -> Pulls:
        """The partner's counts and bucket so far, or new ones when its rate changed."""
        pulls = self._pulls.get(partner.name)
        if pulls is None or pulls.bucket.rate != partner.rate:
            return Pulls(TokenBucket(partner.rate))
        return pulls

    def find(self, token: str) -> Partner | None:
        """The partner holding `token`; every hash is compared, in constant time."""
        presented = hash_token(self._key, token)
        found = None
        for partner in self._partners:
            if hmac.compare_digest(presented, partner.token_hash):
                found = partner
        return found

    def may_pull(self, partner: Partner, name: str) -> bool:
        """Whether `name` ("security.atom") is a served feed of one of the partner's topics."""
        slug, _, kind = name.rpartition(".")
        return (slug in partner.topics and kind in FEED_KINDS
                and self.cache.get(feed_path(slug, kind)) is not None)

    def take(self, partner: Partner) -> int:
        """Count a pull; 0 when it may go ahead, else the seconds until it may."""
        with self._lock:
            pulls = self._pulls[partner.name]
            wait = pulls.bucket.take()
            if wait:
                pulls.limited += 1
            else:
                pulls.count += 1
                pulls.last = datetime.now(UTC)
        return wait

    def document(self, partner: Partner, name: str) -> Served:
        """The partner's feed `name`, built again when its topic's public feed changed."""
        slug, _, kind = name.rpartition(".")
        public = self.cache.get(feed_path(slug, kind)).document.built_from
        served = self._built.get((partner.name, name))
        if served is None or served.key != (public, partner):
            self._build(partner, slug, public)
            served = self._built[(partner.name, name)]
        return served

    def _build(self, partner: Partner, slug: str, public: str) -> None:
        topic = self.settings.topic(slug)
        limit = min(partner.item_limit, self.settings.items_per_feed)
        articles = self.storage.articles(slug, limit)
        for document in build_topic(self.settings, topic, articles, self.storage.created,
                                    syndication=syndication(partner, slug)):
            name = document.path.removeprefix(PARTNER_PREFIX + "topics/")
            self._built[(partner.name, name)] = Served.of(document, key=(public, partner))

    def status(self) -> list[dict]:
        with self._lock:
            return [{"name": p.name, "topics": list(p.topics), "pulls": self._pulls[p.name].count,
                     "limited": self._pulls[p.name].limited,
                     "last_pull": _iso(self._pulls[p.name].last)} for p in self._partners]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None
