"""Files -> a pandas DataFrame: CSV, TSV, Parquet and .npz, chosen by the file's suffix.

Only reading happens here; which columns are used and whether their values are usable is
checked in data.py.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pmbnn.errors import PmbnnError

# Separators a delimited text file may use, the one its suffix promises first.
SEPARATORS = (",", ";", "\t", "|")


def _read_delimited(path: Path, expected: str) -> pd.DataFrame:
    """A delimited text table, its separator read off the header line, its header checked.

    A .csv saved with semicolons (as spreadsheets in many locales do) is read as such rather
    than as one column; duplicate names are refused (pandas would silently rename them).
    """
    with path.open(newline="", errors="replace") as stream:
        header = stream.readline().rstrip("\r\n")
    candidates = [expected, *(s for s in SEPARATORS if s != expected)]
    separator = next((s for s in candidates if s in header), expected)
    names = next(csv.reader([header], delimiter=separator)) if header else []
    repeated = sorted({n for n in names if names.count(n) > 1 and n})
    if repeated:
        positions = [i + 1 for i, n in enumerate(names) if n == repeated[0]]
        raise PmbnnError(
            f"column name {repeated[0]!r} appears more than once in {path} (columns "
            f"{', '.join(map(str, positions))}); give every column its own name"
        )
    frame = pd.read_csv(path, sep=separator)
    if not frame.index.equals(pd.RangeIndex(len(frame))):  # pandas made the extra field an index
        raise PmbnnError(_longer_row(path, separator, len(names)))
    return frame


def _longer_row(path: Path, separator: str, width: int) -> str:
    """Where a delimited file's rows hold more fields than its header names."""
    with path.open(newline="", errors="replace") as stream:
        for line, row in enumerate(csv.reader(stream, delimiter=separator), start=1):
            if len(row) > width:
                return (
                    f"line {line} of {path} has {len(row)} fields where the header names "
                    f"{width} columns; name every column in the header (or remove the extra "
                    "field, e.g. a trailing separator)"
                )
    return f"the rows of {path} hold more fields than its header names; name every column"


def _read_csv(path: Path) -> pd.DataFrame:
    return _read_delimited(path, ",")


def _read_tsv(path: Path) -> pd.DataFrame:
    return _read_delimited(path, "\t")


def _read_parquet(path: Path) -> pd.DataFrame:
    # fastparquet directly: a fraction of pyarrow's size, and pandas' fastparquet engine is
    # deprecated while the library itself is not.
    from fastparquet import ParquetFile

    with path.open("rb") as stream:
        if stream.read(4) != b"PAR1":
            raise PmbnnError(
                f"{path} is not a Parquet file (it lacks Parquet's PAR1 signature); write it "
                "with pandas' DataFrame.to_parquet, or save the table as .csv"
            )
    return ParquetFile(str(path)).to_pandas()


def _read_npz(path: Path) -> pd.DataFrame:
    """Each 1-D array is a column named by its key; a 2-D array K gives columns K_0, K_1, ..."""
    columns: dict[str, np.ndarray] = {}
    with np.load(path) as archive:  # numpy's default refuses object arrays: data only
        for key in archive.files:
            array = archive[key]
            if array.ndim == 1:
                columns[key] = array
            elif array.ndim == 2:
                columns |= {f"{key}_{j}": array[:, j] for j in range(array.shape[1])}
            else:
                raise PmbnnError(
                    f"array {key!r} in {path} has {array.ndim} dimensions; store 1-D columns "
                    "or a 2-D (rows x columns) array"
                )
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise PmbnnError(
            f"arrays in {path} have different lengths ({lengths}); every column needs one "
            "value per row"
        )
    return pd.DataFrame(columns)


READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": _read_csv,
    ".tsv": _read_tsv,
    ".tab": _read_tsv,
    ".parquet": _read_parquet,
    ".pq": _read_parquet,
    ".npz": _read_npz,
}


def read_table(path: str | Path) -> pd.DataFrame:
    """The table in `path`, or one clear error naming what is wrong and how to fix it."""
    path = Path(path)
    if path.is_dir():
        raise PmbnnError(f"{path} is a folder; give the data file in it (--data or [data].path)")
    if not path.is_file():
        raise PmbnnError(
            f"data file not found: {path} (check the path given by --data or [data].path)"
        )
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise PmbnnError(
            f"cannot tell the format of {path} from its suffix {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(READERS)}"
        )
    try:
        frame = reader(path)
    except PmbnnError:
        raise
    except Exception as exc:  # each library has its own errors for a corrupt or empty file
        if path.stat().st_size == 0:
            raise PmbnnError(f"{path} is empty; it needs a header and data rows") from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PmbnnError(f"cannot read {path} as {path.suffix[1:]}: {reason}") from None
    if frame.empty:
        raise PmbnnError(f"{path} has no data rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame
