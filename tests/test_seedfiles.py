"""feeds.seedfiles: seed files -> Articles, front matter, identity and bad seeds."""

import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.model import Article
from feeds.seedfiles import SeedProblem, read_seed, scan_folder, seed_article

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
SEED_NAME = "000_d93c5d4a86fd5825.txt"
SEED = SEEDS / SEED_NAME
SEED_TITLE = "المغرب يعزز دوره العالمي في مكافحة الإرهاب بزيارة حموشي إلى فيينا"
SEED_ID = "80a86308-da9c-53bf-96dc-e325139674ff"
SUBHEADINGS = [
    "مشاركة مغربية فاعلة في فيينا",
    "تعاون ثنائي مكثف",
    "المغرب: شريك استراتيجي في الأمن العالمي",
    "مستقبل التعاون الأمني",
]
BOILERPLATE = [
    "اظهر المزيد",
    "مقالات ذات صلة",
    "اترك تعليقاً",
    "لن يتم نشر عنوان بريدك الإلكتروني. الحقول الإلزامية مشار إليها بـ *",
    "زر الذهاب إلى الأعلى",
]
GOOD_SEED = "خبر جيد\n\nهذا نص الخبر الجيد.\n"
BLOCK = re.compile(r"<(p|h2)>(.*?)</\1>", re.S)


def _scan(folder, max_bytes=2_000_000):
    """(articles, problems) of one pass over `folder`, problems from reading and building."""
    result = scan_folder(folder, {}, max_bytes)
    items = list(result.articles())
    articles = [item for item in items if isinstance(item, Article)]
    problems = [*result.problems, *(item for item in items if isinstance(item, SeedProblem))]
    return articles, problems


def _only_article(folder, **kwargs):
    articles, problems = _scan(folder, **kwargs)
    assert problems == []
    assert len(articles) == 1
    return articles[0]


def _write(path, text, mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, "utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _seed_blocks():
    """Non-blank lines of the shipped seed (each paragraph is one line)."""
    return [line.strip() for line in SEED.read_text("utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def seed():
    return _only_article(SEEDS)


# --- the shipped seed -------------------------------------------------------------------


def test_shipped_seed_has_the_expected_shape():
    blocks = _seed_blocks()
    assert blocks[0] == SEED_TITLE
    assert blocks[-5:] == BOILERPLATE
    body = blocks[1:-5]
    assert [b for b in body if b in SUBHEADINGS] == SUBHEADINGS
    assert len([b for b in body if b not in SUBHEADINGS]) == 11


def test_seed_title_is_its_first_line(seed):
    assert seed.title == SEED_TITLE


def test_seed_body_has_every_paragraph_and_subheading_in_order(seed):
    expected = [("h2" if b in SUBHEADINGS else "p", b) for b in _seed_blocks()[1:-5]]
    assert BLOCK.findall(seed.content_html) == expected


def test_seed_body_counts_11_paragraphs_and_4_subheadings(seed):
    assert seed.content_html.count("<p>") == 11
    assert seed.content_html.count("<h2>") == 4
    assert re.findall(r"<h2>(.*?)</h2>", seed.content_html) == SUBHEADINGS


@pytest.mark.parametrize("line", BOILERPLATE)
def test_seed_body_has_no_boilerplate(seed, line):
    assert line not in seed.content_html


def test_seed_last_paragraph_is_a_paragraph(seed):
    last_tag, last_text = BLOCK.findall(seed.content_html)[-1]
    assert last_tag == "p"
    assert last_text.startswith("زيارة عبد اللطيف حموشي")


def test_short_final_block_is_a_paragraph_not_a_subheading(tmp_path):
    _write(tmp_path / "a.txt", "عنوان\n\nعنوان فرعي قصير\n\nنص الخبر.\n\nالمصدر وكالة الأنباء\n")
    assert _only_article(tmp_path).content_html == (
        "<h2>عنوان فرعي قصير</h2>\n<p>نص الخبر.</p>\n<p>المصدر وكالة الأنباء</p>")


def test_read_seed_and_seed_article_give_the_same_article(seed):
    article = seed_article(read_seed(SEED, SEED_NAME, 2_000_000))
    assert (article.id, article.title, article.content_html) == (
        seed.id, seed.title, seed.content_html)


# --- front matter -----------------------------------------------------------------------

FRONT_MATTER_SEED = """---
url: https://example.org/news/1
published: 2025-05-08T10:30:00+01:00
updated: 2025-05-09
author: مراسل الجريدة
source: hespress
language: ar-MA
topics: [security, morocco]
---
عنوان من بعد المقدمة

نص الخبر.
"""


def test_front_matter_is_honoured(tmp_path):
    article = _only_article(_write(tmp_path / "a.txt", FRONT_MATTER_SEED).parent)
    assert article.title == "عنوان من بعد المقدمة"
    assert article.content_html == "<p>نص الخبر.</p>"
    assert article.url == "https://example.org/news/1"
    assert article.published == datetime(2025, 5, 8, 9, 30, tzinfo=UTC)
    assert article.updated == datetime(2025, 5, 9, tzinfo=UTC)
    assert article.author == "مراسل الجريدة"
    assert article.language == "ar-MA"
    assert article.topics == ("security", "morocco")


def test_front_matter_source_names_the_site_and_stands_in_for_the_author(tmp_path):
    path = _write(tmp_path / "a.txt", "---\nsource: hespress\n---\nعنوان\n\nنص.\n")
    assert read_seed(path, "a.txt", 2_000_000).site == "hespress"
    assert _only_article(tmp_path).author == "hespress"


def test_without_front_matter_published_is_mtime_and_source_is_seeds(tmp_path):
    mtime = 1_746_700_000
    path = _write(tmp_path / "a.txt", GOOD_SEED, mtime=mtime)
    article = _only_article(tmp_path)
    assert article.published == datetime.fromtimestamp(mtime, UTC)
    assert article.updated == datetime.fromtimestamp(mtime, UTC)
    assert article.source == "seeds"
    assert read_seed(path, "a.txt", 2_000_000).site == "seeds"


# --- identity ---------------------------------------------------------------------------


def test_same_seed_file_keeps_the_same_id_across_scans(seed):
    assert _only_article(SEEDS).id == seed.id == SEED_ID


def test_id_depends_only_on_the_relative_path(tmp_path):
    _write(tmp_path / "one" / "news" / "x.txt", GOOD_SEED)
    _write(tmp_path / "two" / "news" / "x.txt", FRONT_MATTER_SEED)
    first, second = _only_article(tmp_path / "one"), _only_article(tmp_path / "two")
    assert first.key == second.key == "news/x.txt"
    assert first.id == second.id


def test_same_content_at_another_path_gets_another_id(tmp_path):
    _write(tmp_path / "a.txt", GOOD_SEED)
    _write(tmp_path / "b.txt", GOOD_SEED)
    articles, problems = _scan(tmp_path)
    assert problems == []
    assert len({a.id for a in articles}) == 2


def test_copied_shipped_seed_keeps_its_id(tmp_path):
    shutil.copy(SEED, tmp_path / SEED_NAME)
    assert _only_article(tmp_path).id == SEED_ID


# --- bad seeds --------------------------------------------------------------------------

LONG_TITLE = " ".join(["كلمة"] * 61)  # 304 characters

BAD_SEEDS = {
    "empty": (b"", ["empty", "first line"]),
    "whitespace": (b"  \n\t\n   \n", ["empty", "first line"]),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", ["NUL", "UTF-8"]),
    "invalid-utf8": ("عنوان\n\nنص ".encode() + b"\xc3\x28\xff.\n", ["not valid UTF-8", "save"]),
    "too-big": (("عنوان\n\n" + "نص طويل جدا. " * 40).encode(), ["over", "max_bytes"]),
    "long-title": (f"{LONG_TITLE}\n\nنص.\n".encode(), ["304 characters", "first line"]),
    "unclosed-front-matter": (b"---\nurl: https://example.org\n\xd8\xb9\n", ["never closed",
                                                                           "add a '---'"]),
    "unknown-key": (b"---\ncolour: red\n---\n\xd8\xb9\n", ["colour", "use"]),
    "bad-date": (b"---\npublished: next tuesday\n---\n\xd8\xb9\n", ["not a date", "2025-05-08"]),
}


@pytest.mark.parametrize("name", list(BAD_SEEDS))
def test_bad_seed_is_a_problem_and_good_seeds_still_come_through(tmp_path, name):
    content, words = BAD_SEEDS[name]
    _write(tmp_path / "good.txt", GOOD_SEED)
    _write(tmp_path / f"{name}.txt", content)
    articles, problems = _scan(tmp_path, max_bytes=200 if name == "too-big" else 2_000_000)
    assert [a.title for a in articles] == ["خبر جيد"]
    assert [p.path.name for p in problems] == [f"{name}.txt"]
    for word in words:
        assert word in problems[0].reason
    assert f"{name}.txt" in str(problems[0])


def test_title_of_exactly_300_characters_is_accepted(tmp_path):
    title = "ب" * 300
    _write(tmp_path / "a.txt", f"{title}\n\nنص.\n")
    assert _only_article(tmp_path).title == title


@pytest.mark.parametrize(
    "name", ["README.md", "README.txt", ".hidden.txt", ".draft.txt", "notes.md"]
)
def test_readme_and_hidden_files_are_not_seeds(tmp_path, name):
    _write(tmp_path / "good.txt", GOOD_SEED)
    _write(tmp_path / name, "# ملاحظات\n\nهذا ليس خبرا.\n")
    assert _only_article(tmp_path).key == "good.txt"


def test_missing_seed_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        scan_folder(tmp_path / "nowhere", {}, 2_000_000)
