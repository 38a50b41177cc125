"""Partners: sites that pull topic feeds with a secret token, each shaped and rate-limited.

A token is shown once (`nashra partners add|rotate`) and only its keyed hash is stored.
Every lookup hashes the presented token and compares it with each partner's hash in
constant time, and a wrong token, a topic outside the partner's set and a missing topic
all look the same to the client.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

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


class PartnerDesk:
    """The partners' side of the server: who a token is, what they may pull, their feeds.

    Partner feeds are built on first pull from the same stored articles as the public
    ones, and rebuilt when the topic's public feed changed.
    """

    def __init__(self, settings: Settings, storage: Storage, cache: DocumentCache):
        self.settings, self.storage, self.cache = settings, storage, cache
        self._key = storage.partner_key()
        self._partners: tuple[Partner, ...] = ()
        self._built: dict[tuple[str, str], Served] = {}
        self.reload()

    def reload(self) -> None:
        """Read the partners again (added, rotated or removed while serving)."""
        self._partners = partners = tuple(self.storage.partners())
        names = {p.name for p in partners}
        self._built = {k: v for k, v in self._built.items() if k[0] in names}

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
        """Count a pull; 0 when it may go ahead, else the seconds until it may. The bucket
        is in storage, shared by every server process."""
        return self.storage.take_pull(partner.name, partner.rate)

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
        usage = self.storage.partner_pulls()
        rows = []
        for partner in self._partners:
            pulls, limited, last = usage.get(partner.name, (0, 0, None))
            rows.append({"name": partner.name, "topics": list(partner.topics), "pulls": pulls,
                         "limited": limited, "last_pull": _iso(last)})
        return rows


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None
