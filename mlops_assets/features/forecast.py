"""Forecast features: clean rows as daily series, zero-filled, with lags that never look ahead.

One code path for training and serving. ``train_set``/``test_set`` are built by
:func:`prepare_history` from clean days; the scorer appends the requested rows to the stored
history and calls the same function, so a served row gets exactly the lag and rolling values a
training row of that date would have.

No look-ahead: the features of a day ``t`` are computed from the target of days before
``t`` only: ``lag_k`` is the target ``k`` days earlier and ``rolling_mean_w`` the mean of the
``w`` days ending ``rolling_shift`` days before ``t``. With the smallest lag and the shift at 7,
a model can forecast a week ahead from stored history alone.

Everything is driven by the spec's ``forecast`` section (series columns, calendar columns, fill
value, lags, windows), nothing by the use case's name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.specs.model import ForecastSpec, UseCaseSpec

CALENDAR_FEATURES = ["day_of_week", "day_of_month", "month"]
FILLED = "_filled"
"""``True`` on rows added by zero-filling (the day had no row in any landed file)."""
ORDER_COLUMNS = ["_landed_date", "_source_file", "_row_number"]


def forecast_of(spec: UseCaseSpec) -> ForecastSpec:
    """The spec's forecast section (a forecast task always has one)."""
    if spec.forecast is None:
        raise ValueError(f"{spec.name}: not a forecast use case")
    return spec.forecast


def date_column(spec: UseCaseSpec) -> str:
    """The event date column (a forecast spec partitions by it)."""
    if not spec.partitions.date_column:
        raise ValueError(f"{spec.name}: a forecast use case needs `partitions.date_column`")
    return spec.partitions.date_column


def lag_name(lag: int) -> str:
    """Column of the target ``lag`` days earlier."""
    return f"lag_{lag}"


def rolling_name(window: int) -> str:
    """Column of the rolling target mean over ``window`` days."""
    return f"rolling_mean_{window}"


def derived_features(spec: UseCaseSpec) -> list[str]:
    """Names of the features derived from the series (lags, rolling means, calendar)."""
    forecast = forecast_of(spec)
    lags = sorted({*forecast.lags, forecast.seasonal_period})
    return [
        *(lag_name(k) for k in lags),
        *(rolling_name(w) for w in forecast.rolling_windows),
        *CALENDAR_FEATURES,
    ]


def naive_column(spec: UseCaseSpec) -> str:
    """The seasonal-naive forecast of a row: its target one season earlier."""
    return lag_name(forecast_of(spec).seasonal_period)


def deduplicate(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """One row per series and date: the one landed last wins (a corrected file replaces)."""
    keys = [*forecast_of(spec).series, date_column(spec)]
    order = [c for c in ORDER_COLUMNS if c in frame.columns]
    if order:
        frame = frame.sort_values(order, kind="stable", na_position="first")
    return frame.drop_duplicates(subset=keys, keep="last")


def fill_missing_days(
    frame: pd.DataFrame, spec: UseCaseSpec, known_from: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Every day of every series from its first to its last row; a missing day sold nothing.

    A filled row gets the spec's ``fill_value`` as target, the calendar columns of its date
    from the other series' rows of that date, and every other column (item, store, price)
    from the series' previous row. Rows are returned sorted by series and date, with
    ``_filled`` marking the added ones.

    ``known_from``: ``frame`` is a window of a longer history starting that day, so every
    series in it is filled from that day (its first row may just be a missing zero).
    """
    forecast = forecast_of(spec)
    date = date_column(spec)
    series = list(forecast.series)
    frame = deduplicate(frame, spec).copy()
    frame[date] = pd.to_datetime(frame[date]).dt.normalize().astype("datetime64[ns]")
    frame[FILLED] = False
    if frame.empty:
        return frame
    spans = frame.groupby(series, dropna=False)[date].agg(["min", "max"]).reset_index()
    if known_from is not None:
        spans["min"] = spans["min"].clip(upper=pd.Timestamp(known_from))
    grid = day_grid(spans, series, date)
    full = grid.merge(frame, on=[*series, date], how="left", suffixes=("", "_dup"))
    added = full[FILLED].isna()
    full[FILLED] = added
    target = spec.target.name
    if target in full.columns:
        # A missing day sold nothing only while sales are known: after the last labelled day
        # (a served request's future dates) its sales are unknown, not zero.
        labelled = frame.loc[pd.to_numeric(frame[target], errors="coerce").notna(), date]
        known = added & (full[date] <= labelled.max()) if len(labelled) else added & False
        full[target] = pd.to_numeric(full[target], errors="coerce").astype("float64")
        full.loc[known, target] = forecast.fill_value
    calendar = [c for c in forecast.calendar_columns if c in frame.columns]
    if calendar:
        by_date = frame.groupby(date)[calendar].first()
        for column in calendar:
            missing = added & full[column].isna()
            full.loc[missing, column] = full.loc[missing, date].map(by_date[column]).to_numpy()
    full = full.sort_values([*series, date], kind="stable").reset_index(drop=True)
    carried = [
        c
        for c in full.columns
        if c not in {*series, date, target, FILLED, *calendar, *ORDER_COLUMNS}
    ]
    if carried:
        previous = full.groupby(series, dropna=False)[carried].ffill()
        full[carried] = full[carried].where(~added, previous)
    return full


def day_grid(spans: pd.DataFrame, series: list[str], date: str) -> pd.DataFrame:
    """Every (series, day) from each series' ``min`` to its ``max`` date, series by series.

    Built at once (keys repeated, days as offsets from each start), not as one small frame per
    series: a history of 30,000 series would be 30,000 frames.
    """
    lengths = ((spans["max"] - spans["min"]).dt.days + 1).to_numpy()
    starts = np.repeat(spans["min"].to_numpy(dtype="datetime64[ns]"), lengths)
    first_of_each = np.repeat(np.cumsum(lengths) - lengths, lengths)
    offsets = (np.arange(int(lengths.sum())) - first_of_each).astype("timedelta64[D]")
    grid = spans.loc[spans.index.repeat(lengths), series].reset_index(drop=True)
    grid[date] = starts + offsets
    return grid


def add_features(series_frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """Lags, shifted rolling means and calendar features of zero-filled, sorted series.

    Each value of day ``t`` uses only targets of days before ``t`` (see the module docstring);
    a lag reaching before a series' first day is missing.
    """
    forecast = forecast_of(spec)
    date = date_column(spec)
    frame = series_frame.copy()
    target = pd.to_numeric(frame[spec.target.name], errors="coerce").astype("float64")
    grouped = target.groupby([frame[c] for c in forecast.series], dropna=False)
    for lag in sorted({*forecast.lags, forecast.seasonal_period}):
        frame[lag_name(lag)] = grouped.shift(lag)
    shifted = grouped.shift(forecast.rolling_shift)
    shifted_groups = shifted.groupby([frame[c] for c in forecast.series], dropna=False)
    levels = list(range(len(forecast.series)))
    for window in forecast.rolling_windows:  # each series' own window, in one Cython pass
        means = shifted_groups.rolling(window, min_periods=1).mean()
        frame[rolling_name(window)] = means.droplevel(levels).reindex(frame.index)
    dates = pd.to_datetime(frame[date])
    frame["day_of_week"] = dates.dt.dayofweek.astype("float64")
    frame["day_of_month"] = dates.dt.day.astype("float64")
    frame["month"] = dates.dt.month.astype("float64")
    return frame


def prepare_history(
    clean: pd.DataFrame, spec: UseCaseSpec, known_from: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Clean rows to model rows: deduplicated, zero-filled per series, with derived features."""
    return add_features(fill_missing_days(clean, spec, known_from), spec)


REQUEST_ROW = "_request_row"


def request_features(
    history: pd.DataFrame,
    requests: pd.DataFrame,
    spec: UseCaseSpec,
    known_from: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Model rows for requested (series, date) rows, their lags taken from stored history.

    Clients send a series, a date and what is known in advance (price, events, SNAP); lags
    and rolling means come from ``history`` (clean rows), computed by the same
    :func:`prepare_history` as in training. A request's empty non-calendar field (item, store,
    price) takes the series' latest stored value. Days between the history's end and a
    requested date are unknown, so lags reaching into them are missing, never zero.
    ``history`` may be a window of the stored days starting ``known_from`` (see
    :func:`fill_missing_days`); a series that started inside the window is then filled from
    the window's start, the one case where a served lag can differ from training's (0, not
    missing).

    Returns:
        One row per request row, in the requests' order and index.
    """
    forecast = forecast_of(spec)
    date = date_column(spec)
    series = list(forecast.series)
    asked = requests.copy()
    asked[date] = pd.to_datetime(asked[date]).dt.normalize().astype("datetime64[ns]")
    asked[REQUEST_ROW] = np.arange(len(asked))
    asked["_landed_date"] = "~request"  # sorts after every landing day: the request wins
    target = spec.target.name
    asked[target] = np.nan
    past = history.iloc[0:0]
    if len(history):
        past = history.merge(asked[series].drop_duplicates(), on=series, how="inner")
        past = past.assign(**{date: pd.to_datetime(past[date]).astype("datetime64[ns]")})
        # A requested day that is stored keeps its known sales for the lags of later days.
        sold = deduplicate(past, spec).set_index([*series, date])[target]
        asked[target] = sold.reindex(pd.MultiIndex.from_frame(asked[[*series, date]])).to_numpy()
        latest = past.sort_values(date, kind="stable").groupby(series, dropna=False).last()
        carried = [
            c
            for c in asked.columns
            if c in latest.columns
            and c not in {*series, date, target, *forecast.calendar_columns, *ORDER_COLUMNS}
        ]
        index = pd.MultiIndex.from_frame(asked[series]) if len(series) > 1 else asked[series[0]]
        for column in carried:
            stored = latest[column].reindex(index).to_numpy()
            asked[column] = asked[column].where(asked[column].notna(), stored)
    start = known_from if len(past) else None
    prepared = prepare_history(pd.concat([past, asked], ignore_index=True), spec, start)
    features = prepared.drop(columns=[REQUEST_ROW]).drop_duplicates([*series, date], keep="last")
    merged = asked[[REQUEST_ROW, *series, date]].merge(
        features, on=[*series, date], how="left", suffixes=("", "_prepared")
    )
    merged = merged.sort_values(REQUEST_ROW, kind="stable")
    merged.index = requests.index
    return merged.drop(columns=[REQUEST_ROW])


def in_series_sample(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.Series:
    """Which rows belong to the series the spec's ``series_sample`` trains on (all if unset).

    A series is in when a stable hash of its id falls in the first ``series_sample`` of the hash
    range: decided row by row, so each day's table is filtered as it is read (the whole history
    never sits in memory), and the same series are picked on every retrain and every machine.
    """
    forecast = forecast_of(spec)
    share = forecast.series_sample
    if share is None or share >= 1:
        return pd.Series(True, index=frame.index)
    keys = frame[forecast.series].astype(str)
    joined = keys.iloc[:, 0] if len(forecast.series) == 1 else keys.agg("\x1f".join, axis=1)
    hashed = pd.util.hash_pandas_object(joined, index=False).to_numpy()
    return pd.Series(hashed < np.uint64(int(share * (2**64 - 1))), index=frame.index)


def history_needed(spec: UseCaseSpec) -> int:
    """Days of history before a date that its features read (the longest lag or window)."""
    forecast = forecast_of(spec)
    longest_window = max(forecast.rolling_windows, default=0) + forecast.rolling_shift
    return max([*forecast.lags, forecast.seasonal_period, longest_window])


def rmsse_inputs(rows: pd.DataFrame, spec: UseCaseSpec) -> dict[str, Any]:
    """What :func:`~mlops_assets.metrics.rmsse` needs from scored rows: naive and series."""
    series = forecast_of(spec).series
    groups = rows[series].astype(str).agg("|".join, axis=1) if series else None
    return {
        "y_naive": pd.to_numeric(rows[naive_column(spec)], errors="coerce").to_numpy(float),
        "groups": None if groups is None else groups.to_numpy(),
    }


def time_folds(dates: pd.Series, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds by date: each fold validates on days after all its training days.

    The unique dates are cut into ``folds + 1`` consecutive blocks; fold ``i`` trains on blocks
    ``0..i`` and validates on block ``i + 1``, so tuning never scores a model on days before
    the ones it learnt from.
    """
    values = pd.to_datetime(dates).to_numpy()
    unique = np.unique(values)
    blocks = np.array_split(unique, folds + 1)
    result = []
    for i in range(1, len(blocks)):
        if not len(blocks[i]):
            continue
        train = np.flatnonzero(values < blocks[i][0])
        valid = np.flatnonzero((values >= blocks[i][0]) & (values <= blocks[i][-1]))
        if len(train) and len(valid):
            result.append((train, valid))
    return result
