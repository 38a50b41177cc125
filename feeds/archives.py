"""RFC 5005 archived feeds: a topic's older stories in pages a new subscriber can backfill.

The current feed shows the newest `items_per_feed` stories. Older ones go, oldest first,
into archive pages of the same size; a page that fills is frozen (its stories recorded and
its document stored once, served as immutable) and the stories after it wait in the open
page, which changes until it fills in turn.
"""

from __future__ import annotations

from collections.abc import Sequence

from feeds.config import Settings
from feeds.model import Article, Document, Topic
from feeds.publish import Entries, archive_path, build_archive_page
from storage import Storage


def update_archives(settings: Settings, storage: Storage, topic: Topic,
                    current: Sequence[Article], read: dict[str, Article],
                    entries: Entries) -> tuple[list[Document], str | None]:
    """Freeze each page that filled; returns the open page to store (if any) and the URL
    of the newest archive page for the current feed's prev-archive link (None: no archive).
    `read` and `entries` are the build's (see Storage.articles, publish.Entries).
    """
    page, older = storage.open_archive(topic.slug, {a.id for a in current}, read)
    size, empty_updated = settings.items_per_feed, storage.created
    while len(older) >= size:
        page += 1
        stories, older = older[:size], older[size:]
        storage.freeze_archive(topic.slug, page, [a.id for a in stories], build_archive_page(
            settings, topic, stories[::-1], page, True, empty_updated, entries))
    if not page and not older:
        return [], None
    open_page = build_archive_page(settings, topic, older[::-1], page + 1, False, empty_updated,
                                   entries)
    newest = page + 1 if older else page
    return [open_page], f"{settings.base_url}/{archive_path(topic.slug, newest)}"
