"""Read a landed file of any common dialect into text columns, as it arrived.

CSV files come with commas, semicolons, tabs or pipes, a byte-order mark (UTF-8, UTF-16 or
UTF-32), Windows line ends and spaces around headers; Parquet files come typed. Raw data keeps
every value as text (missing as null) so nothing is lost before cleaning decides what a value
means.

A file that cannot be read as intended is refused with :class:`UnreadableFileError` naming it,
rather than stored as rows that only look like data: an empty file, a binary file (NUL bytes,
which pandas' parser silently cuts values at), a broken gzip stream, or a header that names a
column twice (pandas would rename the copy ``a.1`` and a spec column would silently read the
first copy).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import stat
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

DELIMITERS = ",;\t|"
READABLE_SUFFIXES = (".csv", ".txt", ".tsv", ".parquet", ".pq", ".csv.gz")


# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_BLANK = re.compile(r"[\s\ufeff]*")


class UnreadableFileError(ValueError):
    """A landed file could not be parsed; the message names the file."""


def local_file_bytes(path: Path) -> bytes:
    """The bytes of a file a person named (``mlops land``, ``mlops predict``).

    Raises:
        UnreadableFileError: Naming what the path is instead: missing, a directory, a device
            or pipe (``/dev/null``), empty, or not readable. (It used to say "no such file"
            for all of them.)
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UnreadableFileError(f"no such file: {path}") from None
    except OSError as error:
        raise UnreadableFileError(f"cannot read {path}: {error.strerror}") from None
    if stat.S_ISDIR(mode):
        raise UnreadableFileError(f"{path} is a directory: give one data file")
    if not stat.S_ISREG(mode):
        kind = "a character device" if stat.S_ISCHR(mode) else "not a regular file"
        raise UnreadableFileError(f"{path} is {kind}, not a data file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UnreadableFileError(f"cannot read {path}: {error.strerror}") from None
    if not data:
        raise UnreadableFileError(f"{path} is empty: 0 bytes")
    return data


def normalize_header(name: object) -> str:
    """A header as written by a person: drop a byte-order mark and surrounding spaces."""
    return str(name).replace("\ufeff", "").strip()


def is_readable(name: str) -> bool:
    """Whether a landed object looks like a data file we can read."""
    return name.lower().endswith(READABLE_SUFFIXES) and not name.rsplit("/", 1)[-1].startswith(".")


def decode_text(data: bytes, name: str = "<csv>") -> str:
    """Text of a CSV: the encoding its byte-order mark names, else UTF-8, else Latin-1.

    Latin-1 decodes any bytes, so binary data would pass as text; a NUL byte (never part of
    UTF-8 or Latin-1 text) marks it as binary instead. UTF-16 and UTF-32 text is full of NUL
    bytes, so those encodings are recognised by their byte-order mark, before that test.

    Raises:
        UnreadableFileError: The data is binary, or not valid in the encoding its mark names.
    """
    for mark, encoding in BYTE_ORDER_MARKS:
        if data.startswith(mark):
            body = data[len(mark) :]
            try:
                text = body.decode(encoding)
            except UnicodeDecodeError as error:
                if encoding != "utf-8":
                    raise UnreadableFileError(
                        f"{name} is not valid {encoding.upper()} text although it starts with "
                        f"that byte-order mark ({error})"
                    ) from error
                text = body.decode("latin-1")
            break
    else:
        if b"\x00" in data:
            raise _binary(name)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    if "\x00" in text:
        raise _binary(name)
    return text


def _binary(name: str) -> UnreadableFileError:
    return UnreadableFileError(
        f"{name} is binary, not CSV text: it contains NUL bytes (a UTF-16 or UTF-32 file must "
        "start with a byte-order mark)"
    )


def is_blank(text: str) -> bool:
    """Whether a text holds nothing but white space and byte-order marks (no header at all)."""
    return _BLANK.fullmatch(text) is not None


def _refuse_duplicates(name: str, columns: Sequence[str]) -> None:
    """Raise if a (normalised, non-empty) column name occurs twice."""
    counts = Counter(c for c in columns if c)
    duplicated = [column for column, count in counts.items() if count > 1]
    if duplicated:
        raise UnreadableFileError(f"{name} has duplicated columns: {', '.join(duplicated)}")


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
    """A CSV as text columns; empty fields are missing, a header without rows is an empty frame.

    Raises:
        UnreadableFileError: The text is blank, does not parse, or names a column twice.
    """
    if is_blank(text):
        raise UnreadableFileError(f"{name} is empty: no header and no rows")
    delimiter = sniff_delimiter(text)

    def parse(**options: Any) -> pd.DataFrame:
        return pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            **options,
        )

    try:
        frame = parse(na_values=[""])
        # pandas renames a repeated header (``a`` -> ``a.1``): read the header as written.
        header = parse(header=None, nrows=1)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
        raise UnreadableFileError(f"{name}: not a readable CSV ({error})") from error
    _refuse_duplicates(name, [normalize_header(c) for c in header.iloc[0].tolist()])
    frame.columns = [normalize_header(c) for c in frame.columns]
    _refuse_duplicates(name, list(frame.columns))
    return frame


def read_landed_file(name: str, data: bytes) -> pd.DataFrame:
    """A landed file (CSV of any common dialect, gzip CSV, or Parquet) as text columns.

    Raises:
        UnreadableFileError: The file is empty, binary, corrupt or has duplicated columns; the
            message names the file. Retrying cannot help: the file itself must be replaced.
    """
    if not data:
        raise UnreadableFileError(f"{name} is empty: 0 bytes")
    lower = name.lower()
    if lower.endswith((".parquet", ".pq")):
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as error:  # pyarrow raises several types for corrupt files
            raise UnreadableFileError(f"{name}: not a readable Parquet file ({error})") from error
        frame.columns = [normalize_header(c) for c in frame.columns]
        _refuse_duplicates(name, list(frame.columns))
        return (
            frame.astype(object)
            .where(frame.notna(), None)
            .astype(object)
            .map(lambda v: v if v is None or isinstance(v, str) else str(v))
        )
    if lower.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:  # bad header, truncated, bad deflate
            raise UnreadableFileError(f"{name} is not a readable gzip file ({error})") from error
    return read_csv_text(decode_text(data, name), name)
