"""``benchmarks/run.py``: the database each run makes, the curve and the comparison with
SQLite it prints, and what it refuses before it runs anything. The runs themselves need
wrk and minutes; CI does not time anything."""

from __future__ import annotations

import pathlib
import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks import run
from tests.conftest import refused_by_script


def test_each_run_gets_a_database_of_its_own(own_database: str) -> None:
    """On PostgreSQL a new database on the same server, dropped afterwards; an SQLite URL
    is given back as it is (``measure`` makes a fresh file)."""
    name = f"bench_test_{uuid.uuid4().hex[:8]}"
    with run.fresh_database(own_database, name) as url:
        if not own_database.startswith("postgresql"):
            assert url == own_database
            return
        assert make_url(url).database == name
        engine = create_engine(url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_database()")).scalar() == name
        engine.dispose()
    server = create_engine(own_database)
    with server.connect() as connection:
        found = connection.execute(
            text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": name}
        ).scalar()
    server.dispose()
    assert found == 0


def _run(database: str, workers: int, read: float, consent_read: float, search: float) -> Any:
    """One run's results as ``measure`` gives them, with a consent-on read of ``consent_read``
    a second at half a core of the gateway and a fifth of the indexer."""
    cores = {"gateway": 0.5, "indexer": 0.2}
    return {
        "database": database,
        "workers": workers,
        "wrk": "-t2 -c8 -d5s",
        "steps": [{"read": {"rps": read}}],
        "consent": {
            "read": {"rps": consent_read, "cores": cores},
            "reference": {"rps": search, "cores": cores},
        },
    }


def test_the_curve_takes_the_median_of_each_number_of_processes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = [
        _run("postgresql+psycopg", 1, 5000, 2000, 800),
        _run("postgresql+psycopg", 1, 5200, 1000, 700),  # a slow moment of the machine
        _run("postgresql+psycopg", 1, 5400, 2100, 820),
        _run("postgresql+psycopg", 4, 6000, 1800, 750),
    ]
    run.curve(runs)
    printed = capsys.readouterr().out
    assert "| 1 | 5,200 | 2,000 | 800 | 250, 100 |" in printed  # 0.5 cores at 2,000/s: 250 µs
    assert "| 4 | 6,000 | 1,800 | 750 | 278, 111 |" in printed
    assert printed.index("| 1 |") < printed.index("| 4 |")


def test_postgresql_is_set_beside_sqlite_as_how_many_times_sqlites_rate_is_its(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = [
        _run("postgresql+psycopg", 1, 5000, 2000, 800),
        _run("postgresql+psycopg", 2, 0, 1600, 640),
    ]
    sqlite = _run("sqlite", 1, 8000, 3500, 1040)
    run.against(runs, sqlite)
    printed = capsys.readouterr().out
    assert "| postgresql+psycopg | 1 | 2,000 | 1.75x | 800 | 1.30x |" in printed
    assert "| postgresql+psycopg | 2 | 1,600 | 2.19x | 640 | 1.62x |" in printed
    assert "| sqlite | 1 | 3,500 | 1.00x | 1,040 | 1.00x |" in printed


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--workers", "0"], "--workers is a number of processes, or a list of them"),
        (["--workers", "1,two"], "--workers is a number of processes, or a list of them"),
        (["--repeat", "0"], "--repeat is a positive number"),
        (["--database-url", "sqlite:///one.db"], "on SQLite each run makes a new file"),
        (["--against-sqlite", "--consent"], "it needs --database-url and --consent"),
        (
            ["--against-sqlite", "--database-url", "postgresql+psycopg://postgres@127.0.0.1/x"],
            "it needs --database-url and --consent",
        ),
    ],
    ids=["no-workers", "workers-word", "repeat", "sqlite-url", "no-database", "no-consent"],
)
def test_the_script_refuses_what_it_could_not_measure(
    arguments: list[str], said: str, tmp_path: pathlib.Path
) -> None:
    """Before anything is started, with or without wrk on the machine."""
    script = str(run.ROOT / "benchmarks" / "run.py")
    assert said in refused_by_script([script, *arguments], tmp_path)
