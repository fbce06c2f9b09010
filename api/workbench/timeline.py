"""The timeline band: a firm's status intervals over valid time as SVG geometry, drawn by the
server (the template writes the elements; no script draws anything)."""

from dataclasses import dataclass
from datetime import date

from domain.types import Status

WIDTH = 960
BAND_HEIGHT = 28


@dataclass(frozen=True)
class Band:
    x: float
    width: float
    status: str
    valid_from: date
    valid_to: date


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    bands: list[Band]
    ticks: list[Tick]
    marker: float | None  # x of the as_of date, when inside the picture


def draw(start: date, end: date, pieces: list[tuple[date, date, Status]], as_of: date
         ) -> Picture:
    span = max((end - start).days, 1)

    def x(day: date) -> float:
        return round((day - start).days / span * WIDTH, 2)

    bands = [Band(x(a), max(x(b) - x(a), 0.5), s.value, a, b) for a, b, s in pieces]
    ticks = [Tick(x(date(year, 1, 1)), str(year))
             for year in range(start.year + 1, end.year + 1) if date(year, 1, 1) < end]
    marker = x(as_of) if start <= as_of < end else None
    return Picture(WIDTH, BAND_HEIGHT + 18, bands, ticks, marker)
