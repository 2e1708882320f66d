"""Readers that turn a data file into one pandas frame with a known, uniform shape.

Every reader returns a frame whose columns are ``label`` (float32, 0/1), the categorical
columns (text or integers, missing allowed) and the numeric columns (float64, NaN when
missing), plus the schema that names them. Processing never has to know the file format.

Bad input raises ``DataError`` naming the file, the line (or row) and the column. Line
numbers of csv/tsv assume one row per line (header on line 1); Criteo and libsvm line
numbers are exact because those readers scan the raw bytes first.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from rankwright.ranking.data.config import SchemaConfig
from rankwright.ranking.data.errors import DataError

LABEL = "label"
CRITEO_NUMERIC: tuple[str, ...] = tuple(f"I{i}" for i in range(1, 14))
CRITEO_CATEGORICAL: tuple[str, ...] = tuple(f"C{i}" for i in range(1, 27))
CRITEO_FIELDS = 1 + len(CRITEO_NUMERIC) + len(CRITEO_CATEGORICAL)

# Only these spellings mean "missing" in a numeric column; in a categorical column only the
# empty string does, so a value such as "NA" (a country code) stays a value.
_NUMERIC_NA = ["", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None", "#N/A"]
_CHUNK_BYTES = 1 << 24


def _missing_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: data file not found")


# --------------------------------------------------------------------------- byte scans


def _complete_line_blocks(path: Path) -> Iterator[bytes]:
    """The file in blocks of whole lines, so per-line counts never straddle two blocks."""
    rest = b""
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(_CHUNK_BYTES)
            if not chunk:
                break
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                rest = chunk
                continue
            rest = chunk[cut:]
            yield chunk[:cut]
    if rest:
        yield rest + b"\n"


def _per_line(block: np.ndarray, marks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count marked positions per line of ``block``; also return each line's length."""
    ends = np.flatnonzero(block == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    before_end = np.searchsorted(marks, ends)
    counts = np.diff(np.concatenate(([0], before_end)))
    lengths = ends - starts
    has_cr = (lengths > 0) & (block[np.maximum(ends - 1, 0)] == 13)
    return counts, lengths - has_cr


def field_counts(path: Path, *, whitespace: bool) -> np.ndarray:
    """Fields on every physical line: tab-separated fields, or whitespace tokens; 0 = blank line.

    Vectorized over raw bytes, so checking a large file costs one fast pass and lets errors
    name the exact line, which pandas cannot do for a short row.
    """
    out: list[np.ndarray] = []
    for raw in _complete_line_blocks(path):
        block = np.frombuffer(raw, dtype=np.uint8)
        if whitespace:
            space = (block == 32) | (block == 9) | (block == 13) | (block == 10)
            starts = np.flatnonzero(~space & np.concatenate(([True], space[:-1])))
            counts, lengths = _per_line(block, starts)
        else:
            tabs, lengths = _per_line(block, np.flatnonzero(block == 9))
            counts = tabs + 1
        out.append(np.where(lengths > 0, counts, 0))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- labels


def to_labels(values: pd.Series, where: Callable[[int], str]) -> np.ndarray:
    """0/1 labels as float32; -1 is read as 0 (libsvm style). ``where(i)`` names row i."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isin(numbers, (-1.0, 0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where(i)}: label {str(values.iloc[i])!r} is not 0/1 (or -1/1); "
            f"{int(bad.sum())} bad label(s) in column {values.name!r}"
        )
    if (numbers == -1.0).any() and (numbers == 0.0).any():
        i = int(np.flatnonzero(numbers == -1.0)[0])
        raise DataError(
            f"{where(i)}: column {values.name!r} mixes labels 0 and -1 ({int((numbers == 0).sum())} zeros, "
            f"{int((numbers == -1).sum())} minus ones): use 0/1, or -1/1, not both"
        )
    return (numbers == 1.0).astype(np.float32)


def _numeric_column(values: pd.Series, where: Callable[[int], str]) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.astype("float64")
    if pd.api.types.is_numeric_dtype(values.dtype):
        out = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{where(i)}: column {values.name!r} value {values.iloc[i]!r} is not a number")
        out = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(out)
    if infinite.any():  # a missing value is blank; an infinity is a broken value, not a zero
        i = int(np.flatnonzero(infinite)[0])
        raise DataError(f"{where(i)}: column {values.name!r} value {str(values.iloc[i])!r} is infinite "
                        f"({int(infinite.sum())} such values); leave a missing value blank")
    return out


def _assemble(
    raw: pd.DataFrame, label: str, schema: SchemaConfig, where: Callable[[int], str]
) -> pd.DataFrame:
    columns: dict[str, object] = {LABEL: to_labels(raw[label], where)}
    for name in schema.categorical:
        columns[name] = raw[name].reset_index(drop=True)
    for name in schema.numeric:
        columns[name] = _numeric_column(raw[name], where)
    return pd.DataFrame(columns)


def _out_schema(schema: SchemaConfig) -> SchemaConfig:
    return SchemaConfig(label=LABEL, categorical=schema.categorical, numeric=schema.numeric)


def _check_label_name(schema: SchemaConfig) -> None:
    if schema.label != LABEL and LABEL in schema.features:
        raise DataError(
            f"schema: a feature may not be called {LABEL!r} unless it is the label (label is {schema.label!r})"
        )


# --------------------------------------------------------------------------- csv / tsv / parquet


def read_table(path: Path, schema: SchemaConfig, *, sep: str = ",") -> tuple[pd.DataFrame, SchemaConfig]:
    """A csv (``sep=","``) or tsv (``sep="\\t"``) file with a header line and the declared columns."""
    _missing_file(path)
    _check_label_name(schema)
    try:
        header = list(pd.read_csv(path, sep=sep, nrows=0).columns)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read the header line: {exc}") from exc
    wanted = (schema.label, *schema.features)
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing} declared in the schema; the header has {header[:40]}"
        )
    na_values = {c: [""] for c in schema.categorical} | {c: _NUMERIC_NA for c in (schema.label, *schema.numeric)}
    try:
        raw = pd.read_csv(
            path,
            sep=sep,
            usecols=list(wanted),
            dtype={c: str for c in schema.categorical},
            keep_default_na=False,
            na_values=na_values,
            low_memory=False,
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot parse: {exc}") from exc
    frame = _assemble(raw, schema.label, schema, lambda i: f"{path} line {i + 2}")
    return frame, _out_schema(schema)


def read_parquet(path: Path, schema: SchemaConfig) -> tuple[pd.DataFrame, SchemaConfig]:
    """A parquet file with the declared columns; errors name the row (1-based)."""
    import pyarrow.parquet as pq

    _missing_file(path)
    _check_label_name(schema)
    try:
        names = list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for a file that is not parquet
        raise DataError(f"{path}: not a readable parquet file: {exc}") from exc
    wanted = (schema.label, *schema.features)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} declared in the schema; the file has {names[:40]}")
    raw = pd.read_parquet(path, columns=list(wanted))
    frame = _assemble(raw, schema.label, schema, lambda i: f"{path} row {i + 1}")
    return frame, _out_schema(schema)


# --------------------------------------------------------------------------- criteo


def criteo_schema() -> SchemaConfig:
    return SchemaConfig(label=LABEL, categorical=CRITEO_CATEGORICAL, numeric=CRITEO_NUMERIC)


def read_criteo(path: Path) -> tuple[pd.DataFrame, SchemaConfig]:
    """Raw Criteo TSV: no header, ``label, I1..I13, C1..C26``, any value may be empty.

    Empty numeric values become NaN, empty categorical values missing (OOV id 0 later).
    Every non-blank line must have exactly 40 tab-separated fields.
    """
    _missing_file(path)
    counts = field_counts(path, whitespace=False)
    bad = (counts != CRITEO_FIELDS) & (counts != 0)
    if bad.any():
        line = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path} line {line + 1}: expected {CRITEO_FIELDS} tab-separated fields "
            f"(label, I1..I13, C1..C26), found {int(counts[line])}; {int(bad.sum())} such line(s)"
        )
    lines = np.flatnonzero(counts) + 1
    names = [LABEL, *CRITEO_NUMERIC, *CRITEO_CATEGORICAL]
    options = dict(
        sep="\t",
        header=None,
        names=names,
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
        na_values=[""],
        engine="c",
    )
    try:
        raw = pd.read_csv(
            path, dtype={LABEL: str, **{c: "float64" for c in CRITEO_NUMERIC}, **{c: str for c in CRITEO_CATEGORICAL}},
            **options,
        )
    except ValueError:  # a non-number in I1..I13: read as text to name the line and column
        raw = pd.read_csv(path, dtype=str, **options)
    schema = criteo_schema()
    frame = _assemble(raw, LABEL, schema, lambda i: f"{path} line {lines[i]}")
    return frame, schema


# --------------------------------------------------------------------------- libsvm / libfm / libffm


def read_libsvm(path: Path) -> tuple[pd.DataFrame, SchemaConfig]:
    """libffm (``label field:feature:value ...``) or libfm (``label feature:value ...``).

    The format is detected from the first token. In libfm form the field of a token is its
    position on the line (as in BARS Frappe/MovieLens). Each field becomes one categorical
    column ``f<field>`` holding the feature id: a field is one-hot, so every value must be 1
    and a field may appear once per line; multi-valued or weighted features are refused
    rather than silently dropped. Labels -1/0/1 become 0/1.
    """
    _missing_file(path)
    counts = field_counts(path, whitespace=True)
    lines = np.flatnonzero(counts) + 1
    if lines.size == 0:
        raise DataError(f"{path}: no data lines")
    width = int(counts.max())
    try:
        raw = pd.read_csv(
            path,
            sep=r"\s+",
            header=None,
            names=list(range(width)),
            dtype=str,
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_values=[""],
            engine="c",
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot parse: {exc}") from exc
    n_rows = len(raw)

    def where(i: int) -> str:
        return f"{path} line {lines[i]}"

    labels = to_labels(raw[0].rename(LABEL), where)
    cells = raw.iloc[:, 1:].to_numpy(dtype=object)
    present = pd.notna(cells)
    rows, positions = np.nonzero(present)
    tokens = pd.Series(cells[rows, positions], dtype="str")
    if tokens.empty:
        frame = pd.DataFrame({LABEL: labels})
        return frame, SchemaConfig(label=LABEL)
    colons = tokens.str.count(":").to_numpy()
    ffm = colons[0] == 2
    expected = 2 if ffm else 1
    wrong = colons != expected
    if wrong.any():
        k = int(np.flatnonzero(wrong)[0])
        form = "field:feature:value (libffm)" if ffm else "feature:value (libfm)"
        raise DataError(f"{where(rows[k])}: token {tokens.iloc[k]!r} is not {form} like the first token of the file")
    parts = tokens.str.split(":", n=expected, expand=True)
    values = pd.to_numeric(parts[expected], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    not_one = values != 1.0
    if not_one.any():
        k = int(np.flatnonzero(not_one)[0])
        raise DataError(
            f"{where(rows[k])}: token {tokens.iloc[k]!r} has value {parts[expected].iloc[k]!r}; only value 1 "
            "(one-hot fields) is supported, multi-valued or weighted features are not"
        )
    if ffm:
        field_numbers = pd.to_numeric(parts[0], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad_field = ~(np.isfinite(field_numbers) & (field_numbers >= 0) & (field_numbers == np.round(field_numbers)))
        if bad_field.any():
            k = int(np.flatnonzero(bad_field)[0])
            raise DataError(f"{where(rows[k])}: token {tokens.iloc[k]!r} has field {parts[0].iloc[k]!r}, not an integer >= 0")
        fields = field_numbers.astype(np.int64)
        features = parts[1]
    else:
        fields = positions.astype(np.int64)
        features = parts[0]
    field_ids, field_index = np.unique(fields, return_inverse=True)
    cell = rows.astype(np.int64) * field_ids.size + field_index
    if ffm:
        order = np.sort(cell)
        repeated = order[1:] == order[:-1]
        if repeated.any():
            c = int(order[1:][repeated][0])
            raise DataError(
                f"{where(c // field_ids.size)}: field {field_ids[c % field_ids.size]} appears more than once; "
                "multi-valued fields are not supported"
            )
    numbers = pd.to_numeric(features, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    integral = bool(np.all(np.isfinite(numbers) & (numbers == np.round(numbers))))
    filled = np.zeros(n_rows * field_ids.size, dtype=bool)
    filled[cell] = True
    filled = filled.reshape(n_rows, field_ids.size)
    columns: dict[str, object] = {LABEL: labels}
    if integral:
        ids = np.zeros(n_rows * field_ids.size, dtype=np.int64)
        ids[cell] = numbers.astype(np.int64)
        ids = ids.reshape(n_rows, field_ids.size)
        for j, f in enumerate(field_ids):
            columns[f"f{f}"] = pd.arrays.IntegerArray(ids[:, j].copy(), ~filled[:, j])
    else:
        text = np.full(n_rows * field_ids.size, None, dtype=object)
        text[cell] = features.to_numpy(dtype=object)
        text = text.reshape(n_rows, field_ids.size)
        for j, f in enumerate(field_ids):
            columns[f"f{f}"] = pd.array(text[:, j], dtype="str")
    names = tuple(f"f{f}" for f in field_ids)
    return pd.DataFrame(columns), SchemaConfig(label=LABEL, categorical=names)


# --------------------------------------------------------------------------- dispatch


def read_source(source: str, path: Path, schema: SchemaConfig) -> tuple[pd.DataFrame, SchemaConfig]:
    """Read one file of a file source; return the frame and the schema of its columns.

    For criteo and libsvm the format implies the columns; a declared schema then selects a
    subset of them.
    """
    if source == "csv":
        return read_table(path, schema, sep=",")
    if source == "tsv":
        return read_table(path, schema, sep="\t")
    if source == "parquet":
        return read_parquet(path, schema)
    if source == "criteo":
        return select(*read_criteo(path), schema, str(path))
    if source == "libsvm":
        return select(*read_libsvm(path), schema, str(path), lenient=True)
    raise DataError(f"source {source!r} is not a file source")


def select(
    frame: pd.DataFrame, implied: SchemaConfig, declared: SchemaConfig, where: str, *, lenient: bool = False
) -> tuple[pd.DataFrame, SchemaConfig]:
    """Keep only the declared features when some are declared (they must exist in ``implied``).

    ``lenient`` (libsvm): a declared field absent from this file becomes an all-missing column,
    since a sparse file may simply never use that field.
    """
    if not declared.features:
        return frame, implied
    known = set(implied.features)
    unknown = [c for c in declared.features if c not in known]
    for name in unknown:
        if lenient and name in declared.categorical:
            n = len(frame)
            frame[name] = pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))
        else:
            raise DataError(f"{where}: declared column {name!r} is not one of this format's columns {sorted(known)[:40]}")
    frame = frame[[LABEL, *declared.categorical, *declared.numeric]].copy()
    for name in declared.numeric:  # a categorical column of the format may be declared numeric
        if name not in implied.numeric:
            frame[name] = _numeric_column(frame[name], lambda i: f"{where} row {i + 1}")
    return frame, SchemaConfig(label=LABEL, categorical=declared.categorical, numeric=declared.numeric)
