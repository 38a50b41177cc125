"""SIGKILL in the middle of `nashra ingest`: the database stays whole, a rerun completes it."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import time
from collections import defaultdict
from pathlib import Path

from conftest import NASHRA, config_text, nashra_env

from feeds.clean import clean_article
from feeds.config import load_settings
from feeds.seedfiles import SeedProblem, scan_folder
from feeds.tagging import Tagger

SEEDS = 1500
BATCH = 50
WORDS = ("الحكومة", "المدينة", "الشباب", "التعليم", "الصحة", "الطريق", "المشروع", "الوزارة",
         "المواطنين", "الجهة", "التنمية", "البرلمان", "المجلس", "الإدارة", "الفلاحة", "الماء",
         "الطاقة", "الثقافة", "المهرجان", "الجامعة", "السكان", "القطاع", "البرنامج",
         "الاجتماع", "المسؤولين", "الخدمات", "السوق", "الميناء", "القطار", "المطار")
TOPIC_PHRASES = ("الأمن والشرطة", "مكافحة الإرهاب والتطرف", "المغرب والرباط",
                 "الاقتصاد والاستثمار", "كرة القدم والمنتخب", "وزير الخارجية والسفير")


def _paragraph(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(15, 30))]
    for _ in range(rng.randint(0, 2)):
        words.insert(rng.randrange(len(words)), rng.choice(TOPIC_PHRASES))
    return " ".join(words) + "."


def write_generated_seeds(folder: Path, count: int) -> None:
    rng = random.Random(1500)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        title = f"{rng.choice(WORDS)} {rng.choice(TOPIC_PHRASES)}: الخبر رقم {i}"
        body = "\n\n".join(_paragraph(rng) for _ in range(rng.randint(1, 3)))
        (folder / f"{i:05d}.txt").write_text(f"{title}\n\n{body}\n", "utf-8")


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM articles").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # not created yet, or its tables not yet


def _expected_topics(settings) -> dict[str, set[str]]:
    """article id -> topics, as the pipeline's own stages give them."""
    tagger = Tagger(settings.topics)
    scan = scan_folder(settings.seeds_dir, {}, settings.max_seed_bytes)
    expected = {}
    for item in scan.articles():
        assert not isinstance(item, SeedProblem), item
        article = tagger.tag(clean_article(item, settings.language))
        expected[article.id] = set(article.topics)
    return expected


def _stored(db: Path) -> tuple[dict[str, tuple[str, str]], dict[str, set[str]], list[str]]:
    with sqlite3.connect(db) as conn:
        integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        articles = {i: (t, c) for i, t, c in
                    conn.execute("SELECT id, title, content_html FROM articles")}
        topics = defaultdict(set)
        for article_id, topic in conn.execute("SELECT article_id, topic FROM article_topics"):
            topics[article_id].add(topic)
    return articles, topics, integrity


def test_sigkill_mid_ingest_leaves_whole_articles_and_a_rerun_completes(tmp_path):
    seeds, db = tmp_path / "seeds", tmp_path / "nashra.db"
    write_generated_seeds(seeds, SEEDS)
    config = tmp_path / "nashra.toml"
    config.write_text(config_text(db, seeds, batch_size=BATCH), "utf-8")
    settings = load_settings(config)
    command = [str(NASHRA), "-q", "ingest", "--config", str(config)]

    process = subprocess.Popen(command, cwd=tmp_path, env=nashra_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not 0 < _count(db) < SEEDS:
            assert process.poll() is None, "ingest finished before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        process.kill()
    finally:
        process.kill()
        process.wait()

    articles, topics, integrity = _stored(db)
    expected = _expected_topics(settings)
    assert integrity == ["ok"]
    assert 0 < len(articles) < SEEDS, "the kill did not land mid-ingest"
    assert set(topics) <= set(articles), "article_topics rows without their article"
    for article_id, (title, content) in articles.items():
        assert title.strip() and content.strip(), article_id
        assert topics.get(article_id, set()) == expected[article_id], article_id

    rerun = subprocess.run(command, cwd=tmp_path, env=nashra_env(), capture_output=True,
                           text=True, timeout=120)

    assert rerun.returncode == 0, rerun.stderr
    articles, topics, integrity = _stored(db)
    assert integrity == ["ok"]
    assert set(articles) == set(expected)
    assert len(articles) == SEEDS
    assert {i: topics.get(i, set()) for i in articles} == expected
