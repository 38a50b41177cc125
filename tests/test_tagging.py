"""feeds.tagging: topics from Arabic-aware term matching, weighted by where terms occur."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.clean import clean_article
from feeds.config import load_settings
from feeds.model import Article, Topic
from feeds.seedfiles import SeedProblem, scan_folder
from feeds.tagging import Tagger

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
WHEN = datetime(2025, 5, 8, tzinfo=UTC)


def _topic(slug, *terms, min_score=1):
    return Topic(slug=slug, language="ar", titles={"ar": slug}, descriptions={"ar": slug},
                 terms=terms, min_score=min_score)


def _article(title="خبر", body="نص", topics=()):
    return Article(source="test", key=title + body, title=title, content_html=f"<p>{body}</p>",
                   summary="", language="ar", published=WHEN, updated=WHEN, topics=topics)


def _scan_articles(folder):
    items = list(scan_folder(folder, {}, 2_000_000).articles())
    assert not [item for item in items if isinstance(item, SeedProblem)]
    return items


# --- the shipped seed with the default topics -------------------------------------------


@pytest.fixture(scope="module")
def seed_topics():
    (article,) = _scan_articles(SEEDS)
    tagger = Tagger(load_settings(None).topics)
    return tagger.tag(clean_article(article)).topics


@pytest.mark.parametrize("slug", ["security", "terrorism", "morocco"])
def test_shipped_seed_is_tagged(seed_topics, slug):
    assert slug in seed_topics


@pytest.mark.parametrize("slug", ["economy", "sports"])
def test_shipped_seed_is_not_tagged(seed_topics, slug):
    assert slug not in seed_topics


# --- matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "word"),
    [
        ("الأمن", "الأمن"),
        ("الأمن", "والأمن"),
        ("المغرب", "بالمغرب"),
        ("الإرهاب", "للإرهاب"),
        ("الإرهاب", "الإرهابية"),
        ("الإرهاب", "الإِرْهَاب"),
    ],
)
def test_term_matches_clitic_and_suffixed_forms(term, word):
    tagger = Tagger((_topic("t", term),))
    assert tagger.scores(_article(body=f"تحدث المسؤول عن {word} اليوم"))["t"] == 1


@pytest.mark.parametrize(
    ("term", "text"),
    [
        ("الأمن", "وصل القطار في اليوم الثامن"),
        ("فاس", "اعتقال مسؤول فاسد"),
        ("ISIS", "the crisis deepens"),
        ("police", "a policeman spoke"),
    ],
    ids=["amn-in-thamin", "fas-in-fasid", "isis-in-crisis", "police-in-policeman"],
)
def test_term_does_not_match_inside_an_unrelated_word(term, text):
    tagger = Tagger((_topic("t", term),))
    assert tagger.scores(_article(body=text))["t"] == 0


@pytest.mark.parametrize(
    ("title", "body", "score"),
    [
        ("المغرب يستضيف قمة", "نص", 2),
        ("خبر", "زيارة إلى المغرب", 1),
        ("خبر", "المغرب والمغرب", 2),
        ("المغرب يستضيف قمة", "وزار الوفد المغرب", 3),
        ("المغرب والمغرب", "المغرب", 5),
    ],
)
def test_title_matches_weigh_two_and_body_matches_one(title, body, score):
    tagger = Tagger((_topic("morocco", "المغرب"),))
    assert tagger.scores(_article(title, body)) == {"morocco": score}


@pytest.mark.parametrize(
    ("title", "body", "tagged"),
    [
        ("المغرب يستضيف قمة", "نص", True),  # score 2
        ("خبر", "زيارة إلى المغرب", False),  # score 1
        ("خبر", "المغرب والمغرب", True),  # score 2
    ],
)
def test_min_score_decides(title, body, tagged):
    tagger = Tagger((_topic("morocco", "المغرب", min_score=2),))
    assert tagger.tag(_article(title, body)).topics == (("morocco",) if tagged else ())


def test_topics_named_by_the_article_are_kept():
    tagger = Tagger((_topic("sports", "مباراة", min_score=3), _topic("morocco", "المغرب")))
    tagged = tagger.tag(_article("خبر", "المغرب", topics=("sports",)))
    assert tagged.topics == ("sports", "morocco")


def test_front_matter_topics_survive_tagging(tmp_path):
    (tmp_path / "a.txt").write_text(
        "---\ntopics: [sports]\n---\nخبر عادي\n\nنص بلا كلمات مفتاحية.\n", "utf-8"
    )
    (article,) = _scan_articles(tmp_path)
    tagged = Tagger(load_settings(None).topics).tag(clean_article(article))
    assert tagged.topics == ("sports",)
