"""feeds.config: the shipped default, and errors that name the key path and the problem."""

import pytest

from feeds.config import ConfigError, load_settings, parse_settings
from feeds.model import EntityRef, Rule

REQUIRED_TOPICS = ["security", "terrorism", "morocco", "international", "economy", "sports"]
TOPIC = '[[topics]]\nslug = "{slug}"\ntitle = {{ ar = "موضوع" }}\nterms = ["كلمة"]\n'


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, "test.toml")
    return str(caught.value)


# --- the shipped default ----------------------------------------------------------------


@pytest.fixture(scope="module")
def default():
    return load_settings(None)


def test_default_has_the_required_topics(default):
    slugs = [t.slug for t in default.topics]
    assert len(slugs) >= 6
    assert set(REQUIRED_TOPICS) <= set(slugs)


def test_default_is_arabic_first(default):
    assert default.language == "ar"
    assert next(iter(default.site_titles)) == "ar"
    for topic in default.topics:
        assert topic.language == "ar"
        assert next(iter(topic.titles)) == "ar"
        assert next(iter(topic.descriptions)) == "ar"


def test_default_topics_have_rules_and_titles(default):
    for topic in default.topics:
        assert topic.rule.op == "any" and topic.rule.parts
        assert topic.title == topic.titles["ar"]


def test_default_server_and_publish_values(default):
    assert (default.host, default.port, default.items_per_feed) == ("127.0.0.1", 8080, 50)
    assert default.base_url == "http://127.0.0.1:8080"


def test_minimal_config_parses():
    settings = parse_settings(TOPIC.format(slug="news"), "test.toml")
    assert [t.slug for t in settings.topics] == ["news"]
    assert settings.topics[0].rule == Rule("any", ("كلمة",))
    assert settings.topics[0].min_score == 2


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "problem"),
    [
        ('[[topics]]\ntitle = "أمن"\nterms = ["الأمن"]\n', "topics[0].slug", "missing"),
        (TOPIC.format(slug="Security News"), "topics[0].slug", "lowercase"),
        (TOPIC.format(slug="news") + TOPIC.format(slug="news"), "topics[1].slug", "unique"),
        ('[[topics]]\nslug = "news"\ntitle = "أخبار"\nterms = []\n', "topics[0].terms",
         "non-empty"),
        ('[[topics]]\nslug = "news"\ntitle = "أخبار"\nterms = ["  "]\n', "topics[0].terms[0]",
         "word or phrase"),
        ('[server]\nport = "x"\n', "server.port", "whole number"),
        ("[publish]\nitems_per_feed = -5\n", "publish.items_per_feed", "positive"),
        ("[fetch]\nprocesses = -1\n", "fetch.processes", '"auto" or a whole number'),
        ('[fetch]\nprocesses = "many"\n', "fetch.processes", '"auto" or a whole number'),
    ],
    ids=["missing-slug", "bad-slug", "duplicate-slug", "empty-terms", "blank-term",
         "port-type", "negative-items", "negative-processes", "word-processes"],
)
def test_parse_settings_error_names_key_path_and_problem(text, path, problem):
    message = _error(text)
    assert "test.toml" in message
    assert f"{path}:" in message
    assert problem in message


def test_invalid_toml_is_a_config_error():
    message = _error('[site\nlanguage = "ar"\n')
    assert message.startswith("test.toml:")
    assert "not valid TOML" in message


def test_load_settings_on_missing_file_names_the_file(tmp_path):
    missing = tmp_path / "nashra.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(missing)
    assert str(missing) in str(caught.value)
    assert "no such config file" in str(caught.value)


def test_fetch_processes_are_auto_unless_a_number_is_given():
    assert parse_settings("", "test.toml").fetch.processes is None
    assert parse_settings("[fetch]\nprocesses = 0\n", "test.toml").fetch.processes == 0
    assert parse_settings("[fetch]\nprocesses = 3\n", "test.toml").fetch.processes == 3


def test_load_settings_reads_a_file(tmp_path):
    path = tmp_path / "nashra.toml"
    path.write_text('[server]\nport = 9090\n' + TOPIC.format(slug="news"), "utf-8")
    settings = load_settings(path)
    assert settings.port == 9090
    assert settings.source == str(path)


# --- topic rules ------------------------------------------------------------------------

RULE_TOPIC = '[[topics]]\nslug = "news"\ntitle = "أخبار"\n{rule}\n'


def test_a_rule_nests_any_all_none_and_entities():
    rule = ('rule = { any = ["الإرهاب", { entity = "org:isis" }, { all = ["خلية", "تفكيك"] }],'
            ' none = ["حرب النجوم"] }')
    (topic,) = parse_settings(RULE_TOPIC.format(rule=rule), "test.toml").topics
    assert topic.rule == Rule("all", (
        Rule("any", ("الإرهاب", EntityRef("org:isis"), Rule("all", ("خلية", "تفكيك")))),
        Rule("none", ("حرب النجوم",)),
    ))


@pytest.mark.parametrize(
    ("rule", "path", "problem"),
    [
        ('rule = { anyy = ["a"] }', "topics[0].rule", "unknown key(s) anyy"),
        ("rule = {}", "topics[0].rule", "empty"),
        ('rule = { any = [] }', "topics[0].rule.any", "non-empty array"),
        ('rule = { none = ["a"] }', "topics[0].rule", "add any"),
        ('rule = { any = ["a", { all = [3] }] }', "topics[0].rule.any[1].all[0]", "word or phrase"),
        ('rule = { any = [{ entity = "org:isiss" }] }', "topics[0].rule.any[0].entity",
         "org:isis"),
        ('rule = { any = ["a"] }\nterms = ["b"]', "topics[0].rule", "either"),
        ('title_ = 1', "topics[0].rule", "either"),
    ],
    ids=["unknown-key", "empty-rule", "empty-any", "only-none", "bad-part", "unknown-entity",
         "rule-and-terms", "neither"],
)
def test_rule_errors_name_the_path_and_the_fix(rule, path, problem):
    message = _error(RULE_TOPIC.format(rule=rule))
    assert f"test.toml: {path}:" in message
    assert problem in message
