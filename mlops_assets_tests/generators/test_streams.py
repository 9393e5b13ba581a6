"""A run's batches do not depend on the calendar: the demo tells the same story on any day.

Day ``n`` of a run is drawn from stream ``n``; only the date itself may differ (an event-date
generator's date column), never the rows.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from mlops_assets.generators import available_generators, get_generator


@pytest.mark.parametrize("name", [n for n in available_generators() if n != "m5_sales"])
def test_a_stream_gives_the_same_batch_on_any_date(name: str) -> None:
    """(m5_sales's rows follow the calendar, weekdays and events: the demo dates its history
    in the real M5 calendar instead.)"""
    generator = get_generator(name)
    first = generator.generate(200, dt.date(2025, 3, 1), seed=7, stream=4)
    later = generator.generate(200, dt.date(2026, 11, 30), seed=7, stream=4)
    pd.testing.assert_frame_equal(first, later)
    other = generator.generate(200, dt.date(2025, 3, 1), seed=7, stream=5)
    assert not first.equals(other)


def test_without_a_stream_the_date_decides() -> None:
    generator = get_generator("bigmart_sales")
    day = dt.date(2025, 3, 1)
    assert generator.generate(50, day, 7).equals(generator.generate(50, day, 7))
    assert not generator.generate(50, day, 7).equals(
        generator.generate(50, day + dt.timedelta(days=1), 7)
    )
