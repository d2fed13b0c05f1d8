"""`make test`'s passes (devtools/passes.py): what they run and how they report."""

from __future__ import annotations

import sys

import pytest

from devtools import passes


def test_the_passes_run_folders_that_exist():
    every = (*passes.SQLITE_PASSES, *passes.POSTGRES_PASSES, passes.POSTGRES_ALONE)
    for _name, args in every:
        for arg in args:
            path = arg.removeprefix("--ignore=")
            if path.startswith("tests"):
                assert (passes.ROOT / path).is_dir(), path


def test_the_test_that_restarts_postgres_runs_alone_after_the_rest():
    for _name, args in passes.POSTGRES_PASSES:
        assert args[:2] == ("-m", "not restarts_postgres")
    assert passes.POSTGRES_ALONE[1][:2] == ("-m", "restarts_postgres")


def test_without_a_postgres_url_the_pass_is_skipped_and_says_so(monkeypatch, capsys):
    monkeypatch.setenv("TEST_POSTGRES_URL", "")

    assert passes.main(["--only", "postgres"]) == 0

    assert "Postgres passes skipped: TEST_POSTGRES_URL is empty." in capsys.readouterr().out


@pytest.mark.parametrize(("code", "failed"), [(0, []), (3, ["demo"])])
def test_a_background_pass_logs_and_reports_its_outcome(
    tmp_path, monkeypatch, capsys, code, failed
):
    monkeypatch.setattr(passes, "LOGS", tmp_path)
    monkeypatch.setattr(passes, "ROOT", tmp_path)
    script = f"print('first'); print('second'); print('last'); raise SystemExit({code})"
    demo = passes.Pass("demo", [sys.executable, "-c", script])

    demo.start()

    assert demo.finish() == failed
    out = capsys.readouterr().out
    assert (tmp_path / "demo.log").read_text().splitlines() == ["first", "second", "last"]
    assert "last" in out
    assert ("passed in" in out) is (code == 0)
    assert (f"FAILED (exit {code})" in out) is (code != 0)


def test_a_pass_reported_after_another_keeps_its_own_time(tmp_path, monkeypatch):
    monkeypatch.setattr(passes, "LOGS", tmp_path)
    monkeypatch.setattr(passes, "ROOT", tmp_path)
    early = passes.Pass("early", [sys.executable, "-c", "pass"])
    early.start()
    early.timer.join()  # it has ended
    took = early.seconds
    later = passes.Pass("later", [sys.executable, "-c", "pass"])
    later.start()
    later.finish()

    early.finish()  # reported only now

    assert 0 < took == early.seconds


def test_main_runs_each_pass_and_fails_if_one_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(passes, "LOGS", tmp_path)
    monkeypatch.setattr(passes, "ROOT", tmp_path)
    monkeypatch.setenv("TEST_POSTGRES_URL", "")
    exits = {"sqlite": 0, "sqlite-dbtasks": 1, "mypy": 0}
    real = passes.Pass

    def each_exits(name, command, **kwargs):  # every pass's command: exit as planned
        return real(name, [sys.executable, "-c", f"raise SystemExit({exits[name]})"], **kwargs)

    monkeypatch.setattr(passes, "Pass", each_exits)

    assert passes.main([]) == 1

    out = capsys.readouterr().out
    assert "----- mypy: passed" in out
    assert "make test: failed: sqlite-dbtasks" in out
