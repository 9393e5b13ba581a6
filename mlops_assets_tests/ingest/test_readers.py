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


# ---------------------------------------------------------------- hostile landed files

UNICODE_CSV = "Item_Identifier,Outlet_Type\nFDA15,Grocery Store\nDRC01,Café Type1\n"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("batch.csv", b""),
        ("batch.csv", b"  \n\n\t \r\n"),
        ("batch.csv", b"\xef\xbb\xbf"),
        ("batch.csv", b"\xef\xbb\xbf\r\n"),
        ("batch.csv", "\ufeff\n".encode("utf-16")),
        ("batch.csv.gz", b""),
        ("batch.csv.gz", gzip.compress(b"", mtime=0)),
        ("batch.csv.gz", gzip.compress(b"\xef\xbb\xbf \n", mtime=0)),
        ("batch.parquet", b""),
    ],
)
def test_empty_file_is_named_as_empty(name: str, data: bytes) -> None:
    """Nothing but white space or a byte-order mark: say so, not pandas' EmptyDataError."""
    with pytest.raises(UnreadableFileError, match=rf"^{name} is empty"):
        read_landed_file(name, data)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"])
def test_utf16_and_utf32_files_with_a_bom_are_decoded(encoding: str) -> None:
    """The BOM names the encoding; ``utf-16-le``/``-be`` write none, so it is prepended."""
    text = UNICODE_CSV if encoding in {"utf-16", "utf-32"} else "\ufeff" + UNICODE_CSV
    frame = read_landed_file("batch.csv", text.encode(encoding))
    assert list(frame.columns) == ["Item_Identifier", "Outlet_Type"]
    assert frame["Outlet_Type"].tolist() == ["Grocery Store", "Café Type1"]


@pytest.mark.parametrize(
    "data",
    [
        b"Item_Identifier,Outlet_Type\nFDA15,\x00\x00Grocery\n",  # NULs inside a CSV
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00",  # a zip archive
        UNICODE_CSV.encode("utf-16-le"),  # UTF-16 without a BOM cannot be told from binary
    ],
)
def test_binary_file_is_refused(data: bytes) -> None:
    with pytest.raises(UnreadableFileError, match=r"^batch.csv .*binary"):
        read_landed_file("batch.csv", data)


@pytest.mark.parametrize(
    ("header", "duplicated"),
    [
        ("Item_Identifier,Item_MRP,Item_MRP", "Item_MRP"),  # pandas would rename it Item_MRP.1
        ("Item_Identifier,Item_MRP, Item_MRP ", "Item_MRP"),  # equal once spaces are dropped
        ("a;b;a;b;c", "a, b"),
    ],
)
def test_duplicated_header_columns_are_refused(header: str, duplicated: str) -> None:
    sep = ";" if ";" in header else ","
    data = f"{header}\n{sep.join(['1'] * (header.count(sep) + 1))}\n".encode()
    with pytest.raises(
        UnreadableFileError, match=rf"^batch.csv .*duplicated columns: {duplicated}$"
    ):
        read_landed_file("batch.csv", data)


def test_duplicated_parquet_columns_are_refused() -> None:
    buffer = io.BytesIO()
    pd.DataFrame({"Item_MRP": ["1"], " Item_MRP": ["2"]}).to_parquet(buffer)
    with pytest.raises(UnreadableFileError, match="duplicated columns: Item_MRP"):
        read_landed_file("batch.parquet", buffer.getvalue())


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_header_only_csv_is_an_empty_frame(encoding: str) -> None:
    frame = read_landed_file("batch.csv", "Item_Identifier;Item_MRP\r\n".encode(encoding))
    assert list(frame.columns) == ["Item_Identifier", "Item_MRP"] and frame.empty


@pytest.mark.parametrize(
    "data",
    [b"not gzip at all", gzip.compress(UNICODE_CSV.encode(), mtime=0)[:-6]],
    ids=["bad", "cut"],
)
def test_broken_gzip_names_the_file(data: bytes) -> None:
    with pytest.raises(UnreadableFileError, match=r"^batch.csv.gz is not a readable gzip file"):
        read_landed_file("batch.csv.gz", data)
