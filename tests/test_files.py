"""The shared local row-file reader: every accepted layout and the errors that name the file."""

import json

import pytest

from s1jax.data.files import read_row_source, read_rows


def test_layouts(tmp_path):
    rows = [{"question": "a", "answer": 1}, {"question": "b", "answer": 2}]
    (tmp_path / "x.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "list.json").write_text(json.dumps(rows))
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": rows}))
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(r) for r in rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "x.parquet")
    for name in ("x.jsonl", "list.json", "wrapped.json", "lines.json", "x.parquet"):
        assert read_rows(tmp_path / name) == rows, name


def test_directory_prefers_split_files(tmp_path):
    (tmp_path / "train.jsonl").write_text(json.dumps({"q": 1}) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps({"q": 2}) + "\n")
    assert read_row_source(tmp_path, "test") == [{"q": 2}]
    assert read_row_source(tmp_path) == [{"q": 2}, {"q": 1}]
    assert read_row_source(tmp_path / "train.jsonl") == [{"q": 1}]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .parquet/.jsonl/.json files"):
        read_row_source(tmp_path / "empty")


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_rows(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{not json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_rows(bad)
    csv = tmp_path / "x.csv"
    csv.write_text("a,b\n")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_rows(csv)
    scalars = tmp_path / "s.json"
    scalars.write_text("[1, 2]")
    with pytest.raises(ValueError, match="list of objects"):
        read_rows(scalars)
