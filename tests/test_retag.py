"""Retagging stored articles and explaining their tags: real SQLite, the real `nashra`."""

from dataclasses import replace

import pytest
from conftest import SEED_TITLE, hours

from feeds.model import DedupeKeys, Rule
from feeds.pipeline import ingest_seeds, retag_stored

pytestmark = pytest.mark.both_backends


def _with_rule(settings, slug, rule, min_score=1):
    topics = tuple(replace(t, rule=rule, min_score=min_score) if t.slug == slug else t
                   for t in settings.topics)
    return replace(settings, topics=topics)


def _seed(storage):
    (article,) = [a for a in storage.articles(limit=10) if a.title == SEED_TITLE]
    return article


def _in_feed(storage, topic):
    return [a.title for a in storage.articles(topic)]


def test_retag_with_unchanged_rules_changes_nothing(settings, storage):
    ingest_seeds(settings, storage)
    report = retag_stored(settings, storage)
    assert (report.checked, report.changed, report.tags) == (1, 0, set())


def test_retag_applies_a_changed_rule_and_rebuilds_the_feed(settings, storage):
    ingest_seeds(settings, storage)
    assert SEED_TITLE not in _in_feed(storage, "sports")
    sports_about_vienna = _with_rule(settings, "sports", Rule("any", ("فيينا",)))
    report = retag_stored(sports_about_vienna, storage)

    assert (report.changed, report.tags) == (1, {"sports"})
    assert SEED_TITLE in _in_feed(storage, "sports")
    sports_feed = next(d for d in storage.documents() if d.path == "topics/sports.atom")
    assert SEED_TITLE.encode() in sports_feed.body


def test_retag_removes_a_topic_whose_rule_no_longer_holds(settings, storage):
    ingest_seeds(settings, storage)
    report = retag_stored(_with_rule(settings, "security", Rule("any", ("بطاطس",))), storage)
    assert report.tags == {"security"}
    assert SEED_TITLE not in _in_feed(storage, "security")
    assert "person:abdellatif-hammouchi" in _seed(storage).topics  # entities stay


def test_retag_keeps_the_topics_of_a_seeds_front_matter(settings, storage, write_seed):
    write_seed("b.txt", "---\ntopics: [sports]\n---\nخبر عادي\n\nنص بلا كلمات مفتاحية.\n")
    ingest_seeds(settings, storage)
    report = retag_stored(settings, storage)
    assert report.changed == 0
    assert "خبر عادي" in _in_feed(storage, "sports")


def test_replace_tags_moves_a_cluster_in_and_out_of_a_topic(storage, make_article):
    root = make_article("a")
    member = make_article("b", published=root.published + hours(1),
                          dedupe=DedupeKeys(duplicate_of=root.id))
    storage.save_articles([root])
    storage.save_articles([member])

    touched = storage.replace_tags({member.id: ("security", "sports")})
    assert "sports" in touched
    assert [a.id for a in storage.articles("sports")] == [root.id]  # the cluster, once

    storage.replace_tags({member.id: ("security",)})
    assert storage.articles("sports") == []
    assert [a.id for a in storage.articles("security")] == [root.id]


def test_replace_tags_of_a_canonical_article_keeps_its_members_tags(storage, make_article):
    root = make_article("a")
    member = make_article("b", published=root.published + hours(1), topics=("sports",),
                          dedupe=DedupeKeys(duplicate_of=root.id))
    storage.save_articles([root])
    storage.save_articles([member])

    storage.replace_tags({root.id: ("economy", "sports")})
    own = {a.id: a.topics for a in storage.articles_with_own_tags()}
    assert own == {root.id: ("economy", "sports"), member.id: ("sports",)}
    storage.replace_tags({root.id: ()})
    assert [a.id for a in storage.articles("sports")] == [root.id]  # through its member
    assert storage.articles("economy") == []


def test_nashra_tag_explain_and_retag(settings, storage, config_file, nashra):
    ingest_seeds(settings, storage)
    prefix = _seed(storage).id[:8]

    explained = nashra("tag", "explain", prefix, "--config", str(config_file))
    assert explained.returncode == 0, explained.stderr
    out = explained.stdout
    assert SEED_TITLE in out
    assert "terrorism: tagged - rule holds" in out
    assert "entity org:isis: body: داعش x3" in out
    assert "person:abdellatif-hammouchi (عبد اللطيف حموشي): title: حموشي" in out
    assert "sports: not tagged" in out

    retagged = nashra("retag", "--config", str(config_file))
    assert retagged.returncode == 0, retagged.stderr
    assert "1 checked, 0 retagged; topics changed: none" in retagged.stdout


def test_nashra_tag_explain_names_an_unknown_article(config_file, nashra):
    result = nashra("tag", "explain", "deadbeef", "--config", str(config_file))
    assert result.returncode != 0
    assert "no stored article 'deadbeef'" in result.stderr
