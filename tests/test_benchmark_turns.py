"""``benchmarks/turns.py``: the figures it compares, the tree it exports, what it refuses.
The runs themselves need wrk and minutes; CI does not time anything."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from benchmarks import turns
from tests.conftest import refused_by_script


def _run(
    read: float,
    ingest: int,
    *,
    consent: tuple[float, float, float] | None,
    bare: bool = True,
    p95: float = 2.0,
) -> dict[str, Any]:
    """One run's results as ``run.py`` writes them: ``consent`` is (rate, gateway cores,
    indexer cores) of the consent-on read, ``p95`` its tail (ms)."""
    step: dict[str, Any] = {
        "observations": 2000,
        "ingest_resources_per_s": ingest,
        "read": {"rps": read},
        "reference": {"rps": read / 4},
    }
    if bare:
        step |= {"limit_read": {"rps": 8000.0}, "limit_reference": {"rps": 4000.0}}
    run: dict[str, Any] = {"steps": [step]}
    if consent is not None:
        rate, gateway, indexer = consent
        row = {"rps": rate, "p95_ms": p95, "cores": {"gateway": gateway, "indexer": indexer}}
        run["consent"] = {"read": row, "reference": {"rps": rate / 4, "cores": {}}}
    return run


def _row(rows: list[tuple[str, list[float], list[float], float]], label: str) -> Any:
    return next(row for row in rows if row[0] == label)


def test_the_summary_takes_medians_and_says_which_side_is_better() -> None:
    base = [_run(4000, 2000, consent=(1000, 0.5, 0.4)) for _ in range(2)]
    base.append(_run(9000, 2600, consent=(3000, 0.5, 0.4)))  # a fast moment of the machine
    ours = [_run(5000, 1800, consent=(1000, 0.4, 0.4)) for _ in range(3)]
    rows = turns.summary(base, ours)
    _, before, after, change = _row(rows, "read, open mode, req/s")
    assert (before, after) == ([4000, 4000, 9000], [5000, 5000, 5000])
    assert change == pytest.approx(0.25)  # the median, not the mean (5,667)
    # processor time: less is better, so 400 µs against 500 is 20 % better
    _, before, after, change = _row(rows, "read, consent on, gateway µs a request")
    assert before[0] == pytest.approx(500) and after[0] == pytest.approx(400)
    assert change == pytest.approx(0.2)
    assert _row(rows, "transaction ingest, resources/s")[3] == pytest.approx(-0.1)
    consent_read = "read, GP backend token, consent + access log on, ratio to the bare app"
    _, before, _, _ = _row(rows, consent_read)
    assert before == pytest.approx([0.125, 0.125, 0.375])
    # the tail: shorter is better
    slow = turns.summary([_run(4000, 2000, consent=(1000, 0.5, 0.4), p95=20.0)], ours)
    _, before, after, change = _row(slow, "read, consent on, p95 ms")
    assert (before, after, change) == ([20.0], [2.0, 2.0, 2.0], pytest.approx(0.9))
    # the search's consent-on run has no processor figures: no row rather than a zero
    assert not [row for row in rows if row[0] == "search, consent on, gateway µs a request"]


def test_figures_a_run_lacks_are_left_out() -> None:
    """PostgreSQL has no bare app; a run without --consent has no consent-on figures."""
    base = [_run(4000, 2000, consent=None, bare=False)]
    ours = [_run(4400, 2000, consent=None, bare=False)]
    labels = [row[0] for row in turns.summary(base, ours)]
    assert labels == [
        "read, open mode, req/s",
        "search subject= _count=50, open mode, req/s",
        "transaction ingest, resources/s",
    ]
    table = turns.table(turns.summary(base, ours), "HEAD~1")
    assert "| read, open mode, req/s | 4,000 | 4,000 | 4,400 | 4,400 | +10.0% |" in table


def test_the_base_is_the_committed_tree_of_the_revision() -> None:
    with turns.exported("HEAD") as tree:
        assert (tree / "benchmarks" / "run.py").is_file()
        assert (tree / "gateway" / "app.py").is_file()
        assert not (tree / ".git").exists()
        kept = tree
    assert not kept.exists()  # removed afterwards


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--", "--repeat", "3"], "--repeat, --database-url, --json and --checkout are this"),
        (["--", "--json", "x.json"], "--repeat, --database-url, --json and --checkout are this"),
        (["--rounds", "0"], "--rounds is a positive number"),
        (["--database-url", "sqlite:///one.db"], "on SQLite each run makes a new file"),
        (["--", "--workers", "1,2"], "one run of each side a round"),
        (["--", "--workers=1,4"], "one run of each side a round"),
        (["--", "--against-sqlite"], "one run of each side a round"),
    ],
    ids=["repeat", "json", "rounds", "sqlite-url", "workers", "workers=", "against-sqlite"],
)
def test_the_script_refuses_what_would_not_be_a_fair_comparison(
    arguments: list[str], said: str, tmp_path: pathlib.Path
) -> None:
    """Before anything is exported or run: options that are the script's own, no rounds,
    an SQLite file that every run would share."""
    script = str(turns.ROOT / "benchmarks" / "turns.py")
    assert said in refused_by_script([script, "--base", "HEAD", *arguments], tmp_path)
