"""`nashra db migrate`: an embedded installation copied to PostgreSQL, row for row."""

from __future__ import annotations

import sqlalchemy as sa
from conftest import hours

from feeds.clusters import Deduper
from feeds.model import Partner, Source
from feeds.pipeline import build_documents, ingest_seeds
from storage import Storage
from storage.schema import meta, metadata


def _tables(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, in primary key order."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {t.name: conn.execute(sa.select(t).order_by(*t.primary_key.columns)).all()
                    for t in metadata.sorted_tables}
    finally:
        engine.dispose()


def _filled(settings, make_article) -> str:
    """An SQLite installation with a row in every table: seeds, a cluster, partners, pages."""
    storage = Storage(settings.storage_url)
    ingest_seeds(settings, storage)
    storage.add_source(Source(name="wire", kind="feed", url="https://wire.example.org/feed"))
    url = "https://news.example.org/story"
    copies = [make_article(str(n), source=s, url=url, published=make_article("x").published
                           + hours(n)) for n, s in enumerate(("test", "wire"))]
    storage.save_articles(Deduper().assign(copies, {}))
    storage.save_partner(Partner("gazette", "ab" * 32, ("security",), utm_source="gazette"))
    storage.partner_key()
    storage.take_pull("gazette", 60)
    build_documents(settings, storage)
    page = storage.documents()[0]
    storage.freeze_archive("security", 1, [copies[0].id], page)
    storage.close()
    return settings.storage_url


def test_migrate_copies_every_row_once_however_often_it_runs(settings, make_article, pg_url,
                                                             nashra):
    source = _filled(settings, make_article)

    first = nashra("db", "migrate", "--from", source, "--to", pg_url)
    again = nashra("db", "migrate", "--from", source, "--to", pg_url)

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert "articles: 3 rows" in first.stdout
    expected = _tables(source)
    assert all(expected.values()), {name: len(rows) for name, rows in expected.items()}
    assert _tables(pg_url) == expected
    stories = []
    for url in (source, pg_url):
        storage = Storage(url)
        stories.append([(a.id, a.reported_by) for a in storage.articles()])
        storage.close()
    assert stories[0] == stories[1]


def test_migrate_refuses_a_target_at_another_schema_version(settings, make_article, pg_url,
                                                            nashra):
    source = _filled(settings, make_article)
    Storage(pg_url).close()
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value="4"))
    engine.dispose()

    refused = nashra("db", "migrate", "--from", source, "--to", pg_url)

    assert refused.returncode == 1
    assert "has schema version 4" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_migrate_refuses_a_source_that_does_not_exist(tmp_path, pg_url, nashra):
    refused = nashra("db", "migrate", "--from", f"sqlite:///{tmp_path}/none.db", "--to", pg_url)

    assert refused.returncode == 1
    assert "no database at" in refused.stderr
    assert not (tmp_path / "none.db").exists()
