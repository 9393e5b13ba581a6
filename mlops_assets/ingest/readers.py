"""Read a landed file of any common dialect into text columns, as it arrived.

CSV files come with commas, semicolons, tabs or pipes, a byte-order mark, Windows line ends and
spaces around headers; Parquet files come typed. Raw data keeps every value as text (missing as
null) so nothing is lost before cleaning decides what a value means.
"""

from __future__ import annotations

import csv
import gzip
import io

import pandas as pd

DELIMITERS = ",;\t|"
READABLE_SUFFIXES = (".csv", ".txt", ".tsv", ".parquet", ".pq", ".csv.gz")


class UnreadableFileError(ValueError):
    """A landed file could not be parsed; the message names the file."""


def normalize_header(name: object) -> str:
    """A header as written by a person: drop a byte-order mark and surrounding spaces."""
    return str(name).replace("\ufeff", "").strip()


def is_readable(name: str) -> bool:
    """Whether a landed object looks like a data file we can read."""
    return name.lower().endswith(READABLE_SUFFIXES) and not name.rsplit("/", 1)[-1].startswith(".")


def decode_text(data: bytes) -> str:
    """Text of a CSV: UTF-8 (with or without a byte-order mark), else Latin-1."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV from its first lines (a header of one column means a comma)."""
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = sample.splitlines()[0] if sample else ""
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def read_csv_text(text: str, name: str = "<csv>") -> pd.DataFrame:
    """A CSV as text columns; empty fields are missing."""
    delimiter = sniff_delimiter(text)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skipinitialspace=True,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
        raise UnreadableFileError(f"{name}: not a readable CSV ({error})") from error
    frame.columns = [normalize_header(c) for c in frame.columns]
    return frame


def read_landed_file(name: str, data: bytes) -> pd.DataFrame:
    """A landed file (CSV of any common dialect, gzip CSV, or Parquet) as text columns."""
    lower = name.lower()
    if lower.endswith((".parquet", ".pq")):
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as error:  # pyarrow raises several types for corrupt files
            raise UnreadableFileError(f"{name}: not a readable Parquet file ({error})") from error
        frame.columns = [normalize_header(c) for c in frame.columns]
        return (
            frame.astype(object)
            .where(frame.notna(), None)
            .astype(object)
            .map(lambda v: v if v is None or isinstance(v, str) else str(v))
        )
    if lower.endswith(".gz"):
        data = gzip.decompress(data)
    return read_csv_text(decode_text(data), name)
