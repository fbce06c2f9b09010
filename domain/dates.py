"""Calendar arithmetic that cannot overflow.

The log may hold any date Python's `date` can (events from before the boundary refused
far-off dates, replays of imported logs), so the engine never adds to a date that might be
`date.max`. Intervals are half-open [from, to): the exclusive end after an inclusive last day
is the day after it, and at the end of the calendar there is none, so it saturates there.
A thing that runs through `date.max` thus reads as running to the end of time.
"""

from datetime import date, timedelta

_ONE_DAY = timedelta(days=1)


def day_after(day: date) -> date:
    """The next day; `date.max` itself on the last day of the calendar."""
    return day if day == date.max else day + _ONE_DAY
