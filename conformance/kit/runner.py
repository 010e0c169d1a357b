"""Run the chosen suites' checks in catalogue order; each check on its own.

A check whose ``needs`` did not pass is skipped with that reason, so one broken step gives
one failure and a row of plain skips, not a cascade of confusing ones. Nothing a check
raises escapes: every outcome is a :class:`~conformance.kit.model.Result`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from conformance.kit import suites as _suites  # noqa: F401 (registers every check)
from conformance.kit.model import CATALOGUE, SUITES, Check, Failed, Result, Skipped, Status
from conformance.kit.session import Options, RunError, Session

__all__ = ["checks_of", "passed", "run"]


def checks_of(suites: Iterable[str]) -> list[Check]:
    chosen = set(suites)
    unknown = chosen - set(SUITES)
    if unknown:
        raise ValueError(f"unknown suite: {', '.join(sorted(unknown))}")
    found = [c for c in CATALOGUE if c.suite in chosen]
    return sorted(found, key=lambda c: SUITES.index(c.suite))  # stable: catalogue order within


def _run_one(check: Check, session: Session) -> Result:
    started = time.monotonic()
    try:
        check.run(session)
    except Failed as verdict:
        status, message = Status.FAILED, str(verdict)
    except Skipped as reason:
        status, message = Status.SKIPPED, str(reason)
    except RunError as problem:
        status, message = Status.ERROR, str(problem)
    except Exception as error:
        status = Status.ERROR
        message = f"the server's answer could not be judged ({type(error).__name__}: {error})"
    else:
        status, message = Status.PASSED, ""
    return Result(check, status, message[:1000], time.monotonic() - started)


def run(
    options: Options,
    suites: Iterable[str] = SUITES,
    progress: Callable[[Result], None] | None = None,
    only: Iterable[str] | None = None,
) -> list[Result]:
    """Every check of ``suites`` (or only the checks ``only`` names, with what they need)
    against the server ``options`` names."""
    checks = checks_of(suites)
    if only is not None:
        wanted = _with_needs(set(only), checks)
        checks = [c for c in checks if c.id in wanted]
    ran = {c.id for c in checks}
    results: dict[str, Result] = {}
    session = Session(options)
    try:
        for check in checks:
            missing = [
                n
                for n in check.needs
                if n in ran and (n not in results or results[n].status != Status.PASSED)
            ]
            if missing:
                result = Result(
                    check, Status.SKIPPED, f"needs {', '.join(missing)}, which did not pass"
                )
            else:
                result = _run_one(check, session)
            results[check.id] = result
            if progress is not None:
                progress(result)
    finally:
        session.close()
    return list(results.values())


def _with_needs(ids: set[str], checks: list[Check]) -> set[str]:
    by_id = {c.id: c for c in checks}
    found = set()
    todo = list(ids)
    while todo:
        current = todo.pop()
        if current in found or current not in by_id:
            continue
        found.add(current)
        todo.extend(by_id[current].needs)
    return found


def passed(results: Iterable[Result]) -> bool:
    """Whether every required check passed (the run's exit code is 0 only then)."""
    return all(r.status == Status.PASSED for r in results if r.check.required)
