"""The ZRM trend as inline SVG: one small chart per domain, readable without colour.

Each domain gets its own panel (no legend to match colours against): the scale 1 to 5 on
the left with its lines, the scores as a line with a marked point and the number printed
beside each point, the target as a dashed line labelled with its value, and the dates of
the first and last point below. Every number is also in the table the page shows beside
the chart; the SVG carries a title and description for screen readers.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass

__all__ = ["Series", "domain_chart"]

_WIDTH = 320
_HEIGHT = 150
_LEFT = 34
_RIGHT = 20
_TOP = 14
_BOTTOM = 30


@dataclass(frozen=True, slots=True)
class Series:
    """One domain's scores: (date, score, moment) in date order, and the target (if any).

    ``moment`` is the measurement's moment in words (intake, progress, exit), or "".
    """

    code: str
    name: str
    points: tuple[tuple[str, int, str], ...]
    target: int | None


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(text[:10])


def _y(score: float) -> float:
    return _TOP + (5 - score) * (_HEIGHT - _TOP - _BOTTOM) / 4


def domain_chart(series: Series, target_word: str, chart_id: str) -> str:
    """The SVG of one domain (every text escaped)."""
    days = [_day(d) for d, _, _ in series.points]
    first, last = min(days), max(days)
    span = max((last - first).days, 1)
    inner = _WIDTH - _LEFT - _RIGHT

    def x(day: dt.date) -> float:
        if first == last:
            return _LEFT + inner / 2
        return _LEFT + (day - first).days * inner / span

    name = html.escape(series.name)
    summary = ", ".join(f"{d[:10]}{f' ({m})' if m else ''}: {s}" for d, s, m in series.points)
    if series.target is not None:
        summary += f"; {target_word} {series.target}"
    parts = [
        f"<svg class='chart' viewBox='0 0 {_WIDTH} {_HEIGHT}' role='img' "
        f"aria-labelledby='{chart_id}-t {chart_id}-d' xmlns='http://www.w3.org/2000/svg'>",
        f"<title id='{chart_id}-t'>{name}</title>",
        f"<desc id='{chart_id}-d'>{html.escape(summary)}</desc>",
    ]
    for score in range(1, 6):
        y = _y(score)
        parts.append(
            f"<line x1='{_LEFT}' x2='{_WIDTH - _RIGHT}' y1='{y:.1f}' y2='{y:.1f}' "
            "stroke='#bbb' stroke-width='1'/>"
            f"<text x='{_LEFT - 8}' y='{y + 4:.1f}' text-anchor='end' font-size='11'>{score}</text>"
        )
    if series.target is not None:
        y = _y(series.target)
        parts.append(
            f"<line x1='{_LEFT}' x2='{_WIDTH - _RIGHT}' y1='{y:.1f}' y2='{y:.1f}' "
            "stroke='#000' stroke-width='2' stroke-dasharray='6 4'/>"
            f"<text x='{_WIDTH - _RIGHT}' y='{y + 13:.1f}' text-anchor='end' font-size='11'>"
            f"{html.escape(target_word)} {series.target}</text>"
        )
    coordinates = [(x(_day(d)), _y(s), s) for d, s, _ in series.points]
    if len(coordinates) > 1:
        path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _ in coordinates)
        parts.append(f"<polyline points='{path}' fill='none' stroke='#1a4f8b' stroke-width='2.5'/>")
    for cx, cy, score in coordinates:
        parts.append(
            f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='4.5' fill='#1a4f8b' stroke='#fff'/>"
            f"<text x='{cx:.1f}' y='{cy - 8:.1f}' text-anchor='middle' font-size='12' "
            f"font-weight='bold'>{score}</text>"
        )
    parts.append(f"<text x='{_LEFT}' y='{_HEIGHT - 8}' font-size='11'>{first.isoformat()}</text>")
    if last != first:
        parts.append(
            f"<text x='{_WIDTH - _RIGHT}' y='{_HEIGHT - 8}' text-anchor='end' "
            f"font-size='11'>{last.isoformat()}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
