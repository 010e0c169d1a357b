#!/usr/bin/env python3
"""Measure this checkout against an earlier commit in turns: the before and after of a change.

A shared machine's speed moves by half within minutes, so two runs of ``run.py`` an hour
apart say little about a change. This runs ``benchmarks/run.py`` on the two alternately, on
the same machine in the same minutes: the commit ``--base`` (exported from git into a
temporary directory) and this checkout as it is on disk, uncommitted changes included. Odd
rounds start with the base, even rounds with this checkout, so that a drift of the machine's
speed weighs on both alike. Each run is on a fresh store, which ``run.py`` makes: on SQLite
a new file; on PostgreSQL (``--database-url``) a database of its own on that server, dropped
after it.

It ends with a table per path: each run's figures, their medians and the change. The
processor time per consent-on request moves less than the rates (``run.py`` takes it from
the processes' own counters); compare that first. The consent-on p95 shows the waits a rate
hides (requests held back for the access log's indexer).

Usage: python benchmarks/turns.py --base HEAD~1 [--rounds 3] [--database-url URL]
       -- --steps 2000 --per-patient 100 --duration 5 --workers 1 --consent --skip-create

Everything after ``--`` goes to ``run.py`` as it is, except ``--repeat`` and
``--database-url`` (the rounds and this script's own option), and what would make more than
one run of a side in a round (a list of ``--workers``, ``--against-sqlite``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent

if __package__ in (None, ""):  # run as a script: the package of run.py is this checkout's
    sys.path.insert(0, str(ROOT))
from benchmarks.run import paths, processor_per_request  # noqa: E402


def figures(results: dict[str, Any]) -> dict[str, float]:
    """The figures of one run's results compared, by label, in ``run.py``'s own terms: each
    path's rate and its ratio to the bare app of the run (SQLite only), the processor time
    each process spent per consent-on request, the ingest."""
    out: dict[str, float] = {}
    for label, ours, limit, _ in paths(results):
        out[f"{label}, req/s"] = ours["rps"]
        if limit is not None:
            out[f"{label}, ratio to the bare app"] = ours["rps"] / limit["rps"]
    for kind, label in (("read", "read"), ("reference", "search")):
        if "consent" in results:
            # the tail shows the waits a rate hides: requests held back for the log's indexer
            if "p95_ms" in results["consent"][kind]:
                out[f"{label}, consent on, p95 ms"] = results["consent"][kind]["p95_ms"]
            for role, spent in processor_per_request(results["consent"][kind]).items():
                out[f"{label}, consent on, {role} µs a request"] = spent
    out["transaction ingest, resources/s"] = results["steps"][-1]["ingest_resources_per_s"]
    return out


def summary(
    base: Sequence[dict[str, Any]], ours: Sequence[dict[str, Any]]
) -> list[tuple[str, list[float], list[float], float]]:
    """Per figure both sides have: (label, the base's values, ours, the change of our median
    from the base's as a fraction, positive where ours is better: a higher rate or ratio,
    less processor time, a shorter tail)."""
    before_runs, after_runs = [figures(r) for r in base], [figures(r) for r in ours]
    rows = []
    for label in before_runs[0]:
        before = [f[label] for f in before_runs if label in f]
        after = [f[label] for f in after_runs if label in f]
        if not after:
            continue
        was, now = statistics.median(before), statistics.median(after)
        less_is_better = "µs" in label or " ms" in label
        change = (was - now) / was if less_is_better else (now - was) / was
        rows.append((label, before, after, change))
    return rows


def _shown(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:,.0f}"


def table(rows: list[tuple[str, list[float], list[float], float]], base: str) -> str:
    lines = [
        f"| figure | {base} (each run) | median | this checkout (each run) | median | better by |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, before, after, change in rows:
        lines.append(
            f"| {label} | {', '.join(map(_shown, before))} | {_shown(statistics.median(before))} "
            f"| {', '.join(map(_shown, after))} | {_shown(statistics.median(after))} "
            f"| {change:+.1%} |"
        )
    return "\n".join(lines)


@contextmanager
def exported(revision: str) -> Iterator[pathlib.Path]:
    """The tree of ``revision`` in a temporary directory (``git archive``: committed files)."""
    with tempfile.TemporaryDirectory(prefix="eigendossier-turns-") as directory:
        archive = pathlib.Path(directory) / "tree.tar"
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), revision],
            check=True,
        )
        tree = pathlib.Path(directory) / "tree"
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        yield tree


def measure(checkout: pathlib.Path | None, options: list[str], database_url: str) -> dict[str, Any]:
    """One ``run.py`` run of ``checkout``'s gateway (None: this checkout); its results."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), *options]
        command += ["--json", out.name]
        if checkout is not None:
            command += ["--checkout", str(checkout)]
        if database_url:
            command += ["--database-url", database_url]
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        runs: list[dict[str, Any]] = json.loads(pathlib.Path(out.name).read_text())
    return runs[0]


def _values_of(option: str, options: Sequence[str]) -> list[str]:
    """The values given to ``option`` in ``options`` (``--option value`` or ``--option=value``)."""
    found = []
    for index, word in enumerate(options):
        if word == option and index + 1 < len(options):
            found.append(options[index + 1])
        elif word.startswith(f"{option}="):
            found.append(word.partition("=")[2])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, in turns")
    parser.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL: a database on the server to measure on; each run gets its own",
    )
    parser.add_argument("options", nargs=argparse.REMAINDER, help="-- then run.py's options")
    args = parser.parse_args()
    options = [o for o in args.options if o != "--"]
    if any(o.startswith(("--repeat", "--database-url", "--json", "--checkout")) for o in options):
        raise SystemExit("--repeat, --database-url, --json and --checkout are this script's")
    if "--against-sqlite" in options or any("," in o for o in _values_of("--workers", options)):
        raise SystemExit("one run of each side a round: one --workers, no --against-sqlite")
    if args.rounds < 1:
        raise SystemExit("--rounds is a positive number")
    if args.database_url and not args.database_url.startswith("postgresql"):
        raise SystemExit("--database-url is for PostgreSQL: on SQLite each run makes a new file")
    base_runs: list[dict[str, Any]] = []
    our_runs: list[dict[str, Any]] = []
    with exported(args.base) as tree:
        for number in range(1, args.rounds + 1):
            sides = [("base", tree), ("ours", None)]
            for side, checkout in sides if number % 2 else reversed(sides):
                results = measure(checkout, options, args.database_url)
                (base_runs if side == "base" else our_runs).append(results)
                print(f"round {number}: {side} done", file=sys.stderr, flush=True)
    print(f"\n{base_runs[0]['machine']}; {base_runs[0]['database']}; wrk {base_runs[0]['wrk']}")
    print(table(summary(base_runs, our_runs), args.base))


if __name__ == "__main__":
    main()
