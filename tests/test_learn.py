"""The trained topic classifier: examples, fitting, saving, deciding topics, `nashra train`."""

from __future__ import annotations

import copy
import json
import random
import re
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.feature_extraction.text import CountVectorizer

from feeds import learn
from feeds.cli import cli
from feeds.config import ConfigError, load_settings
from feeds.model import Article
from feeds.pipeline import make_tagger, retag_stored
from storage import Storage

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
VOCABULARY = {
    "sport": ["المباراة", "الفريق", "الهدف", "اللاعب", "الدوري", "المدرب", "الملعب", "الجمهور"],
    "economy": ["البنك", "التضخم", "الأسعار", "الاستثمار", "السوق", "الميزانية", "الديون",
                "الصادرات"],
    "culture": ["الفيلم", "المهرجان", "الرواية", "الفنان", "المسرح", "الكتاب", "السينما",
                "المعرض"],
}
COMMON = ["قال", "في", "على", "اليوم", "مصدر", "أن", "من", "الذي", "خلال", "العاصمة"]


def made_up(label: str, rng: random.Random) -> dict:
    words = rng.choices(VOCABULARY[label], k=6) + rng.choices(COMMON, k=14)
    rng.shuffle(words)
    return {"title": " ".join([*rng.choices(VOCABULARY[label], k=2), "اليوم"]),
            "text": " ".join(words), "label": label}


def write_examples(path: Path, per_label: int = 12, seed: int = 1) -> Path:
    rng = random.Random(seed)
    lines = [json.dumps(made_up(label, rng), ensure_ascii=False)
             for _ in range(per_label) for label in VOCABULARY]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def write_config(tmp_path: Path, decide: str, extra: str = "") -> Path:
    config = tmp_path / "nashra.toml"
    config.write_text(f"""
[storage]
url = "sqlite:///{tmp_path / 'nashra.db'}"

[model]
path = "model.joblib"

[[topics]]
slug = "sports"
title = "رياضة"
terms = ["كرة السلة"]
decide = "{decide}"
label = "sport"
{extra}
""", "utf-8")
    return config


def article(title: str, body: str, key: str = "a1", source: str = "test") -> Article:
    return Article(source=source, key=key, title=title, content_html=f"<p>{body}</p>",
                   summary="", language="ar", published=WHEN, updated=WHEN,
                   id="a1" if key == "a1" else "")


def mostly_sport(rng: random.Random, count: int = 40) -> list[dict]:
    """A source's articles, 80% sport and 10% each economy and culture."""
    labels = ["sport"] * (count * 8 // 10) + ["economy", "culture"] * (count // 10)
    return [made_up(label, rng) for label in labels]


AMBIGUOUS = ("الفريق والبنك اليوم", "المباراة السوق اللاعب الأسعار قال في العاصمة")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> learn.TopicModel:
    path = write_examples(tmp_path_factory.mktemp("examples") / "examples.jsonl")
    return learn.fit(learn.read_jsonl(path))


def test_a_saved_model_loads_and_predicts_unseen_articles(model, tmp_path):
    learn.save(model, tmp_path / "model.joblib")
    loaded = learn.load(tmp_path / "model.joblib")
    rng = random.Random(99)
    unseen = [made_up(label, rng) for label in VOCABULARY for _ in range(3)]

    probabilities = loaded.probabilities(
        [learn.example(u["title"], u["text"], (), "unseen") for u in unseen])

    assert set(loaded.labels) == set(VOCABULARY)
    assert [loaded.labels[row.argmax()] for row in probabilities] == [u["label"] for u in unseen]


def test_a_model_adapts_to_the_mix_of_labels_of_each_source(model):
    adapted = copy.copy(model)
    rng = random.Random(7)
    stored = [learn.example(u["title"], u["text"], (), "x", source)
              for source, count in (("sportsdesk", 40), ("small", 20))
              for u in mostly_sport(rng, count)]

    assert adapted.adapt(stored) == {"sportsdesk": 40}  # "small" has too few to tell
    mix = dict(zip(adapted.labels, adapted.source_mix["sportsdesk"], strict=True))
    assert mix["sport"] > 0.7 and mix["economy"] < 0.2 and mix["culture"] < 0.2
    assert dict(zip(model.labels, model.prior, strict=True))["sport"] == pytest.approx(1 / 3)
    sport = adapted.labels.index("sport")
    from_each = adapted.probabilities([learn.example(*AMBIGUOUS, (), "x", source)
                                       for source in ("sportsdesk", "small", "")])[:, sport]
    assert from_each[0] > from_each[1] == from_each[2]  # the same article, likelier sport
    assert from_each[1] == model.probabilities([learn.example(*AMBIGUOUS, (), "x")])[0, sport]


class CountingPipeline:
    """scikit-learn's pipeline, counting the rows it is asked the probabilities of."""

    def __init__(self, pipeline):
        self.pipeline, self.rows = pipeline, 0

    def predict_proba(self, rows):
        self.rows += len(rows)
        return self.pipeline.predict_proba(rows)


def test_what_adapting_computed_is_not_computed_again_to_decide(model):
    adapted, counted = copy.copy(model), CountingPipeline(model.pipeline)
    adapted.pipeline = counted
    rng = random.Random(11)
    stored = [learn.example(u["title"], u["text"], (), f"s{n}", "sportsdesk")
              for n, u in enumerate(mostly_sport(rng))]
    unseen = learn.example(*AMBIGUOUS, (), "new", "sportsdesk")

    adapted.adapt(stored)
    once = adapted.probabilities([*stored[:30], unseen, *stored[30:]])
    again = adapted.probabilities(stored)

    # each stored one to adapt, the unseen one, then the stored ones again: a row is kept once
    assert counted.rows == 40 + 1 + 40
    assert np.array_equal(np.delete(once, 30, axis=0), again)  # the same rows either way
    assert np.array_equal(once[30], adapted.probabilities([unseen])[0])


def test_estimated_mix_finds_the_share_that_makes_the_probabilities_agree():
    prior = np.array([0.5, 0.5])
    # A model right 9 times in 10 that says 0.9 for 70 articles of 100: 75 have the label,
    # as 0.75 * 0.9 + 0.25 * 0.1 = 0.7.
    probabilities = np.array([[0.9, 0.1]] * 70 + [[0.1, 0.9]] * 30)

    assert learn.estimated_mix(probabilities, prior) == pytest.approx([0.75, 0.25], abs=1e-3)
    assert learn.estimated_mix(np.full((40, 2), 0.5), prior) == pytest.approx(prior)  # no news


def test_retag_adapts_the_model_to_the_stored_sources_and_saves_it(model, tmp_path):
    learn.save(model, tmp_path / "model.joblib")
    config = write_config(tmp_path, "both")
    settings = load_settings(config)
    rng = random.Random(3)
    storage = Storage(settings.storage_url)
    storage.save_articles([article(u["title"], u["text"], f"s{n}", "sportsdesk")
                           for n, u in enumerate(mostly_sport(rng))])

    report = retag_stored(settings, storage)
    storage.close()

    assert "adapted to the mix of labels of 1 source(s) with 30 or more stored articles: " \
           "sportsdesk" in str(report)
    saved = learn.load(tmp_path / "model.joblib")
    assert set(saved.source_mix) == {"sportsdesk"}
    sport = saved.labels.index("sport")
    assert saved.source_mix["sportsdesk"][sport] > 0.7
    assert re.search(r"adapted to source 'sportsdesk', its estimated mix of labels \(training's\): "
                     r"culture 0\.\d\d \(0\.33\), economy .*, sport 0\.[789]\d \(0\.33\)$",
                     saved.adaptation("sportsdesk"))


def test_both_tags_by_the_model_when_the_rule_misses(model, tmp_path):
    learn.save(model, tmp_path / "model.joblib")
    sports = article("الفريق يفوز في المباراة", "سجل اللاعب الهدف في الدوري أمام الجمهور")
    prices = article("التضخم يرفع الأسعار", "البنك يرفع الفائدة والسوق تتراجع")

    both = make_tagger(load_settings(write_config(tmp_path, "both")))
    by_rule = make_tagger(load_settings(write_config(tmp_path, "rule")))

    assert "sports" in both.tags(sports)
    assert "sports" not in both.tags(prices)
    assert "sports" not in by_rule.tags(sports)  # the rule alone wants "كرة السلة"


def test_articles_tagged_together_get_the_tags_each_gets_alone(model, tmp_path):
    learn.save(model, tmp_path / "model.joblib")
    tagger = make_tagger(load_settings(write_config(tmp_path, "model")))
    rng = random.Random(5)
    articles = [article(u["title"], u["text"], f"k{n}") for n, u in enumerate(mostly_sport(rng))]
    articles[-1] = articles[-1].with_topics(("sports",))  # a culture one its source named

    together = tagger.tags_of(articles)

    assert together == [tagger.tags(a) for a in articles]
    assert sum("sports" in tags for tags in together) == 33  # the 32 sport ones, and [-1]


def test_model_alone_overrules_a_matching_rule(model, tmp_path):
    learn.save(model, tmp_path / "model.joblib")
    tagger = make_tagger(load_settings(write_config(tmp_path, "model")))

    assert "sports" not in tagger.tags(article("كرة السلة والتضخم", "البنك يرفع الأسعار"))


def test_a_topic_the_model_decides_needs_its_label(model, tmp_path):
    learn.save(model, tmp_path / "model.joblib")
    config = write_config(tmp_path, "both")
    config.write_text(config.read_text("utf-8").replace('"sport"', '"football"'), "utf-8")

    with pytest.raises(ConfigError, match=r"label 'football'.*knows culture, economy, sport"):
        make_tagger(load_settings(config))


@pytest.mark.parametrize(("line", "problem"), [
    ('{"title": "t", "label": "sport"}', '"text" is missing'),
    ('{"text": "نص", "label": []}', '"label" is missing'),
    ('{"text": "نص"', "not JSON"),
    ('["text", "label"]', "write an object"),
])
def test_a_bad_line_names_its_file_line_and_fix(tmp_path, line, problem):
    path = write_examples(tmp_path / "examples.jsonl")
    path.write_text(path.read_text("utf-8") + line + "\n", "utf-8")

    with pytest.raises(learn.LearnError) as error:
        learn.read_jsonl(path)

    assert f"{path} line 37: {problem}" in str(error.value)


def test_too_few_examples_of_a_label_say_which(tmp_path):
    examples = learn.read_jsonl(write_examples(tmp_path / "e.jsonl", per_label=3))

    with pytest.raises(learn.LearnError, match=r"too few examples of culture \(3\)"):
        learn.check_examples(examples, folds=5)


def test_a_model_from_another_scikit_learn_is_refused(model, tmp_path):
    path = tmp_path / "model.joblib"
    learn.save(model, path)
    saved = joblib.load(path)
    joblib.dump({**saved, "sklearn": "0.1"}, path)

    with pytest.raises(learn.LearnError, match=r"trained with scikit-learn 0.1.*nashra train"):
        learn.load(path)


@pytest.mark.parametrize(("setting", "problem"), [
    ('decide = "sometimes"', "topics[0].decide: 'sometimes' must be one of rule, model, both"),
    ("threshold = 1.5", "topics[0].threshold: must be a probability between 0 and 1"),
])
def test_config_errors_name_the_key(tmp_path, setting, problem):
    config = tmp_path / "nashra.toml"
    config.write_text(f'[[topics]]\nslug = "x"\ntitle = "x"\nterms = ["a"]\n{setting}\n', "utf-8")

    with pytest.raises(ConfigError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        load_settings(config)


def test_a_missing_model_is_a_config_error_naming_the_fix(tmp_path):
    settings = load_settings(write_config(tmp_path, "both"))

    with pytest.raises(ConfigError, match=r"\[model\] path\): no trained model; run `nashra t"):
        make_tagger(settings)


def test_char_ngrams_count_as_scikit_learn_does():
    texts = ["الفريق يفوز في المباراة", "البنك يرفع الأسعار", "ab abab", "الفريق والبنك"]

    ours = learn.CharNgrams((2, 5), min_df=1).fit_transform(texts)
    theirs = CountVectorizer(analyzer="char", ngram_range=(2, 5), lowercase=False).fit_transform(
        texts)

    assert ours.shape == theirs.shape
    for row in range(len(texts)):
        assert sorted(ours[row].data) == sorted(theirs[row].data)


def test_light_stem_gives_the_forms_of_a_word_one_stem():
    forms = ["الاقتصادية", "والاقتصاد", "اقتصادي", "للاقتصاد"]

    assert {learn.light_stem(word) for word in forms} == {"اقتصاد"}
    assert [learn.light_stem(word) for word in ("في", "ولد", "football")] == ["في", "ولد",
                                                                              "football"]


def test_nashra_train_reports_and_saves(tmp_path):
    config = write_config(tmp_path, "both")
    examples = write_examples(tmp_path / "examples.jsonl")

    result = CliRunner().invoke(cli, ["train", "--from", str(examples), "--folds", "3",
                                      "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.output and "fold 3/3" in result.output
    assert "no source has 30 stored articles yet" in result.output
    assert learn.load(tmp_path / "model.joblib").labels == ("culture", "economy", "sport")


def test_nashra_train_names_a_source_that_never_uses_a_label_the_others_use(tmp_path):
    config = write_config(tmp_path, "rule")
    rng = random.Random(4)
    sources = (("desk", VOCABULARY, 12), ("wire", ("sport", "economy"), 20),
               ("tiny", ("sport",), 5))  # name, its labels, examples of each
    lines = [{**made_up(label, rng), "source": source}
             for source, labels, each in sources for label in labels for _ in range(each)]
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
                        "utf-8")

    result = CliRunner().invoke(cli, ["train", "--from", str(examples), "--folds", "3",
                                      "--config", str(config)])

    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note: ")]
    # 12 culture among the 41 examples of the others: at that rate wire's 40 would have
    # 12 (10 or more is asked), tiny's 5 would have 1
    assert notes == ["note: source 'wire' (40 examples) has no culture, which 29% of the others "
                     "have: if it files such articles under another label, the model learns "
                     "that they are not culture; relabel them, or leave them out"]


def test_nashra_train_on_a_bad_file_names_the_line(tmp_path):
    config = write_config(tmp_path, "rule")
    examples = tmp_path / "examples.jsonl"
    examples.write_text('{"text": "نص", "label": "sport"}\n{"label": "sport"}\n', "utf-8")

    result = CliRunner().invoke(cli, ["train", "--from", str(examples), "--config", str(config)])

    assert result.exit_code == 1
    assert f'{examples} line 2: "text" is missing' in result.output
    assert not (tmp_path / "model.joblib").exists()


# --- `nashra tag explain` with the model ---------------------------------------------------

SPORTS = ("الفريق يفوز في المباراة", "سجل اللاعب الهدف في الدوري أمام الجمهور")
BASKETBALL = ("كرة السلة: الفريق يفوز في المباراة", "سجل اللاعب الهدف في الدوري")
PRICES_AND_BASKETBALL = ("كرة السلة والتضخم", "البنك يرفع الأسعار")  # the rule holds


def explain_stored(config: Path, stored: Article) -> str:
    """`nashra tag explain` of `stored`, saved in the config's storage first."""
    storage = Storage(load_settings(config).storage_url)
    storage.save_articles([stored])
    storage.close()
    result = CliRunner().invoke(cli, ["tag", "explain", stored.id, "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(("decide", "text", "verdict"), [
    ("both", SPORTS, "tagged by the model - rule does not hold"),
    ("both", BASKETBALL, "tagged by the rule and the model - rule holds"),
    ("both", PRICES_AND_BASKETBALL, "tagged by the rule - rule holds"),
    ("model", PRICES_AND_BASKETBALL, "not tagged - rule holds"),
    ("model", SPORTS, "tagged by the model - rule does not hold"),
])
def test_tag_explain_shows_the_models_probability_and_what_tagged(model, tmp_path, decide,
                                                                  text, verdict):
    learn.save(model, tmp_path / "model.joblib")
    config = write_config(tmp_path, decide, "threshold = 0.6")
    stored = article(*text)

    out = explain_stored(config, stored)

    probability = learn.load(tmp_path / "model.joblib").label_probabilities(stored)["sport"]
    reaches = ">=" if probability >= 0.6 else "<"
    assert "model: not adapted to source 'test' (it had fewer than 30 stored articles" in out
    assert f"  sports: {verdict}, score" in out
    assert (f"    model: probability {probability:.3f} for label 'sport' {reaches} threshold 0.6 "
            f'(decide = "{decide}"') in out
    tagged = "sports" in make_tagger(load_settings(config)).tags(stored)
    assert tagged == verdict.startswith("tagged")  # what explain says is what tagging does


def test_tag_explain_without_the_model_says_so_in_one_line_and_explains_the_rules(tmp_path):
    config = write_config(tmp_path, "both")

    out = explain_stored(config, article(*BASKETBALL))

    (line,) = [line for line in out.splitlines() if line.startswith("model:")]
    assert f"{tmp_path / 'model.joblib'} ([model] path): no trained model" in line
    assert "run `nashra train`" in line
    assert "  sports: tagged - rule holds" in out
    assert "'كرة السلة': title: كره السله" in out


# --- end to end: a feed source, tagged by the model, adapted to by `nashra retag` -----------


def rss(items: list[dict]) -> str:
    entries = "".join(
        f"<item><title>{i['title']}</title><description>{i['text']}</description>"
        f"<link>https://desk.example/{n}</link><guid>https://desk.example/{n}</guid>"
        f"<pubDate>Mon, 05 Jan 2026 {n % 24:02d}:00:00 +0000</pubDate></item>"
        for n, i in enumerate(items))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>مكتب الرياضة</title><link>https://desk.example/</link>"
            f"<language>ar</language>{entries}</channel></rss>")


def test_a_feed_source_is_tagged_by_the_model_and_retag_adapts_to_it(model, tmp_path,
                                                                     httpserver, nashra):
    learn.save(model, tmp_path / "model.joblib")
    (tmp_path / "seeds").mkdir()
    items = mostly_sport(random.Random(11))
    httpserver.expect_request("/desk").respond_with_data(rss(items),
                                                         content_type="application/rss+xml")
    config = write_config(tmp_path, "model", f'\n[[sources]]\nname = "desk"\n'
                                             f'url = "{httpserver.url_for("/desk")}"\n')

    ingested = nashra("ingest", "--config", str(config), timeout=120)
    retagged = nashra("retag", "--config", str(config), timeout=120)

    assert ingested.returncode == 0, ingested.stderr
    assert retagged.returncode == 0, retagged.stderr
    assert ("adapted to the mix of labels of 1 source(s) with 30 or more stored articles: "
            "desk") in retagged.stdout
    storage = Storage(load_settings(config).storage_url)
    stored = {a.url: a for a in storage.articles_with_own_tags() if a.source == "desk"}
    storage.close()
    sport = {f"https://desk.example/{n}" for n, i in enumerate(items) if i["label"] == "sport"}
    assert len(stored) == 40
    assert {url for url, a in stored.items() if "sports" in a.topics} == sport
    explained = nashra("tag", "explain", stored[min(sport)].id, "--config", str(config))
    assert "model: adapted to source 'desk', its estimated mix of labels" in explained.stdout

