"""The `nashra` command, run for real in tmp_path with a config that points there."""

from __future__ import annotations

import gzip
import signal
import subprocess
import time

import feedparser
import pytest
from click.testing import CliRunner
from conftest import NASHRA, SEED_TITLE, free_port, nashra_env, wait_until_answers

from feeds.cli import cli
from feeds.config import load_settings


@pytest.fixture
def ingested(nashra, config_file):
    result = nashra("ingest", "--config", str(config_file))
    assert result.returncode == 0, result.stderr
    return result


def test_ingest_stores_the_seed(ingested, storage):
    assert "1 new" in ingested.stdout
    assert [a.title for a in storage.articles()] == [SEED_TITLE]


def test_build_writes_every_static_file(ingested, nashra, config_file, tmp_path):
    out = tmp_path / "site"

    result = nashra("build", "--out", str(out), "--config", str(config_file))

    assert result.returncode == 0, result.stderr
    assert (out / "index.html").is_file() and (out / "topics.opml").is_file()
    for topic in load_settings(config_file).topics:
        for kind in ("rss", "atom"):
            feed = out / "topics" / f"{topic.slug}.{kind}"
            assert feedparser.parse(feed.read_bytes()).bozo == 0, feed


def test_topics_lists_each_slug_with_count_and_feed_urls(ingested, nashra, config_file):
    settings = load_settings(config_file)

    result = nashra("topics", "--config", str(config_file))

    lines = result.stdout.splitlines()
    counts = {line.split()[0]: int(line.split()[1]) for line in lines if line[:1].strip()}
    assert result.returncode == 0, result.stderr
    assert counts["security"] == 1 and counts["sports"] == 0
    assert set(counts) == {t.slug for t in settings.topics}
    for topic in settings.topics:
        for kind in ("rss", "atom"):
            assert f"{settings.base_url}/topics/{topic.slug}.{kind}" in result.stdout


def test_articles_prints_the_seed_title(ingested, nashra, config_file):
    result = nashra("articles", "--topic", "security", "--limit", "5",
                    "--config", str(config_file))

    assert result.returncode == 0, result.stderr
    assert SEED_TITLE in result.stdout
    assert "[international,morocco,security,terrorism +" in result.stdout  # entities counted


@pytest.mark.parametrize("args", [["ingest", "--config", "missing.toml"],
                                  ["--config", "missing.toml", "topics"]])
def test_a_missing_config_is_one_error_line(nashra, args):
    result = nashra(*args)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error:") and "no such config file" in line


def test_an_invalid_config_value_names_the_key(nashra, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "x"\n', "utf-8")

    result = nashra("topics", "--config", str(bad))

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "server.port" in line


def command_paths(group=cli, prefix=()):
    """Every command path under `group`, the group itself included."""
    yield list(prefix)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from command_paths(command, (*prefix, name))
        else:
            yield [*prefix, name]


@pytest.mark.parametrize("command", list(command_paths()), ids=" ".join)
def test_help_works_for_the_group_and_every_subcommand(command):
    result = CliRunner().invoke(cli, [*command, "--help"], prog_name="nashra")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: nashra")


def test_help_lists_the_commands_a_newcomer_needs():
    paths = {" ".join(p) for p in command_paths()}

    assert {"run", "ingest", "build", "topics", "articles", "sources add", "sources list",
            "sources check", "sources remove", "sources import", "sources export"} <= paths


def test_run_serves_the_seed_and_stops_on_ctrl_c(config_file, tmp_path):
    port = free_port()
    process = subprocess.Popen([str(NASHRA), "--config", str(config_file), "run",
                                "--port", str(port)], cwd=tmp_path, env=nashra_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        response = wait_until_answers(f"http://127.0.0.1:{port}/topics/security.atom",
                                      timeout=30, process=process)
        assert SEED_TITLE in {e.title for e in feedparser.parse(response.content).entries}

        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        process.wait(timeout=5)
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_build_writes_a_gzipped_copy_beside_each_file(ingested, nashra, config_file, tmp_path):
    out = tmp_path / "site"

    nashra("build", "--out", str(out), "--config", str(config_file))

    files = [p for p in out.rglob("*") if p.is_file() and p.suffix != ".gz"]
    assert len(files) > 2
    for path in files:
        assert gzip.decompress(path.with_name(path.name + ".gz").read_bytes()) == path.read_bytes()
