"""Landed files of any common dialect read into the same text columns."""

from __future__ import annotations

import gzip
import io

import pandas as pd
import pytest

from mlops_assets.ingest.readers import UnreadableFileError, is_readable, read_landed_file

EXPECTED = pd.DataFrame(
    {
        "Item_Identifier": ["FDA15", "DRC01"],
        "Item_Weight": ["9.3", None],
        "Outlet_Type": ["Grocery Store", "Supermarket Type1"],
    }
)


ROWS = [
    ["Item_Identifier", "Item_Weight", "Outlet_Type"],
    ["FDA15", "9.3", "Grocery Store"],
    ["DRC01", "", "Supermarket Type1"],
]


def csv_bytes(sep: str, end: str = "\n", quote: bool = False, encoding: str = "utf-8") -> bytes:
    cells = [[f'"{c}"' if quote else c for c in row] for row in ROWS]
    return end.join(sep.join(row) for row in cells).encode(encoding) + end.encode()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("comma.csv", csv_bytes(",")),
        ("semicolon.csv", csv_bytes(";")),
        ("tab.tsv", csv_bytes("\t")),
        ("pipe.txt", csv_bytes("|")),
        (
            "bom_crlf.csv",
            b"\xef\xbb\xbf" + csv_bytes(",", "\r\n").replace(b",Item_Weight,", b", Item_Weight ,"),
        ),
        ("quoted.csv", csv_bytes(",", quote=True)),
        ("latin1.csv", csv_bytes(",", encoding="latin-1")),
    ],
)
def test_csv_dialects(name: str, data: bytes) -> None:
    frame = read_landed_file(name, data)
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), EXPECTED, check_dtype=False)


def test_gzip_csv() -> None:
    data = gzip.compress(csv_bytes(","))
    frame = read_landed_file("batch.csv.gz", data)
    assert list(frame["Item_Identifier"]) == ["FDA15", "DRC01"]


def test_parquet_values_become_text() -> None:
    buffer = io.BytesIO()
    pd.DataFrame({"Item_Identifier": ["FDA15", "DRC01"], "Item_Weight": [9.3, None]}).to_parquet(
        buffer
    )
    frame = read_landed_file("batch.parquet", buffer.getvalue())
    assert frame["Item_Weight"].tolist() == ["9.3", None]


def test_values_with_text_are_kept_as_they_arrived() -> None:
    frame = read_landed_file("a.csv", b"Item_Fat_Content,Item_Visibility\n LF ,0\nreg,0.0\n")
    assert frame["Item_Fat_Content"].tolist() == ["LF ", "reg"]
    assert frame["Item_Visibility"].tolist() == ["0", "0.0"]


def test_unreadable_file_names_the_file() -> None:
    with pytest.raises(UnreadableFileError, match="broken.parquet"):
        read_landed_file("broken.parquet", b"not parquet at all")


@pytest.mark.parametrize(
    ("name", "readable"),
    [
        ("a.csv", True),
        ("a.CSV", True),
        ("a.parquet", True),
        ("a.csv.gz", True),
        (".a.csv.tmp", False),
        ("notes.md", False),
        ("dir/.hidden.csv", False),
    ],
)
def test_is_readable(name: str, readable: bool) -> None:
    assert is_readable(name) is readable
