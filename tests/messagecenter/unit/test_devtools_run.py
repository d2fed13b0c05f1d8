"""devtools/run.py's decisions: where notifications go, what is kept between runs."""

from __future__ import annotations

import re
import stat

import pytest

from devtools import run
from devtools import supervisor


def test_ntfy_url_from_the_environment_wins(tmp_path):
    target = run.resolve_ntfy("https://ntfy.example.com/alerts", tmp_path)

    assert target == run.NtfyTarget(url="https://ntfy.example.com/alerts", mode="env")
    assert not (tmp_path / run.TOPIC_FILE).exists()


@pytest.mark.parametrize("value", ["local", "LOCAL", " local "])
def test_local_means_the_stand_in(tmp_path, value):
    target = run.resolve_ntfy(value, tmp_path)

    assert target.mode == "local"
    assert not (tmp_path / run.TOPIC_FILE).exists()


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_ntfy_url_picks_a_private_ntfy_sh_topic_and_keeps_it(tmp_path, value):
    first = run.resolve_ntfy(value, tmp_path)
    second = run.resolve_ntfy(value, tmp_path)

    assert first.mode == "public"
    assert first.url == f"https://ntfy.sh/{first.topic}"
    # ntfy topic names: 1-64 of [-_A-Za-z0-9]; long enough not to be guessed.
    assert re.fullmatch(r"[-_A-Za-z0-9]{30,64}", first.topic)
    assert second == first
    topic_file = tmp_path / run.TOPIC_FILE
    assert topic_file.read_text().strip() == first.topic
    assert stat.S_IMODE(topic_file.stat().st_mode) == 0o600


def test_topics_differ_between_checkouts(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    a = run.resolve_ntfy(None, tmp_path / "a")
    b = run.resolve_ntfy(None, tmp_path / "b")

    assert a.topic != b.topic


def test_an_existing_topic_file_is_used(tmp_path):
    (tmp_path / run.TOPIC_FILE).write_text("my-own-topic\n")

    target = run.resolve_ntfy(None, tmp_path)

    assert target.url == "https://ntfy.sh/my-own-topic"


def test_an_empty_file_is_replaced(tmp_path):
    path = tmp_path / run.PASSWORD_FILE
    path.write_text("\n")

    value = run.read_or_create(path, lambda: "fresh")

    assert value == "fresh"
    assert path.read_text() == "fresh\n"


@pytest.mark.django_db
def test_ensure_user_creates_a_superuser_then_keeps_it_in_step_with_the_file(
    django_user_model,
):
    run.ensure_user("demo", "first-password")
    user = django_user_model.objects.get(username="demo")
    assert user.is_superuser
    assert user.check_password("first-password")

    # .demo-password deleted and made again: the user follows the file.
    run.ensure_user("demo", "second-password")

    user.refresh_from_db()
    assert user.check_password("second-password")
    assert django_user_model.objects.filter(username="demo").count() == 1


def test_banner_says_how_to_sign_in_and_subscribe(tmp_path):
    target = run.resolve_ntfy(None, tmp_path)

    text = run.banner("http://127.0.0.1:8000/", "s3cret", target)

    assert "http://127.0.0.1:8000/" in text
    assert "'demo'" in text
    assert "'s3cret'" in text
    assert target.topic in text
    assert f"https://ntfy.sh/{target.topic}" in text


def test_banner_lists_the_operations_dashboard(tmp_path):
    text = run.banner("http://127.0.0.1:8000/", "s3cret", run.resolve_ntfy(None, tmp_path))
    assert "http://127.0.0.1:8000/ops/" in text
    assert "http://127.0.0.1:8000/admin/" in text


def test_polls_are_summarised_not_logged_one_by_one():
    line = '[30/Nov/2026 03:30:00] "GET /notifications/live/?seen=3.12%3AREADY%3A0 HTTP/1.1" 204 0'
    assert supervisor.POLL_LINE.search(line)
    assert not supervisor.POLL_LINE.search(
        line.replace('" 204 0', '" 500 145')
    )  # errors still show
    assert not supervisor.POLL_LINE.search('"GET / HTTP/1.1" 200 5120')

    now = [0.0]
    counter = supervisor.PollCounter(clock=lambda: now[0])
    assert [counter.count() for _ in range(30)] == [""] * 30
    now[0] = 61.0
    assert counter.count() == (
        "31 polls of /notifications/live/ in the last 61 s (answered; not logged one by one)"
    )
    assert counter.count() == ""
