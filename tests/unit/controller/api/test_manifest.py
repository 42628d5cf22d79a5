import io
import os
from pathlib import Path

import pytest

from controller.api.errors import InputError
from controller.api.manifest import MAX_FILE_BYTES, load, parse_text


def test_multi_document_with_line_numbers() -> None:
    text = "a: 1\n---\n# comment\nb:\n  c: [1, 2]\n---\n"
    docs = parse_text(text, "f.yaml")
    assert [d.index for d in docs] == [1, 2]
    assert docs[1].data == {"b": {"c": [1, 2]}}
    assert docs[1].line_of(("b", "c", 1)) == 5
    assert docs[1].line_of(("b", "missing", "deeper")) == 4
    assert docs[1].where(("b",)) == "f.yaml:4: document 2"


def test_malformed_yaml_names_line_and_column() -> None:
    with pytest.raises(InputError, match=r"^f.yaml:3:\d+: invalid YAML"):
        parse_text("a: 1\nb: [1,\nc: }\n", "f.yaml")


def test_document_that_is_not_a_mapping() -> None:
    with pytest.raises(InputError, match=r"f.yaml:3: document 2 is a list, not a mapping"):
        parse_text("a: 1\n---\n- x\n", "f.yaml")
    with pytest.raises(InputError, match="document 1 is a str"):
        parse_text("just words\n", "f.yaml")


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(InputError, match=r"f.yaml:3: duplicate key 'a' \(first given on line 1\)"):
        parse_text("a: 1\nb: 2\na: 3\n", "f.yaml")


def test_file_over_one_mebibyte(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * MAX_FILE_BYTES)
    with pytest.raises(InputError, match=r"big.yaml: \d+ bytes, larger than 1024 KiB"):
        load([str(big)])
    with pytest.raises(InputError, match="<stdin>: larger than 1024 KiB"):
        load(["-"], stdin=io.BytesIO(b"a: " + b"x" * MAX_FILE_BYTES))


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.yaml: no such file or directory"):
        load([str(tmp_path / "nope.yaml")])
    dangling = tmp_path / "link.yaml"
    os.symlink(tmp_path / "gone.yaml", dangling)
    with pytest.raises(InputError, match="link.yaml: no such file or directory"):
        load([str(dangling)])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="directory holds no .yaml"):
        load([str(empty)])
    afile = tmp_path / "plain"
    afile.write_text("a: 1")
    with pytest.raises(InputError, match=r"no such file or directory|cannot read"):
        load([str(afile / "under-a-file.yaml")])


def test_binary_file_is_named_by_byte(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"a: \xff\xfe")
    with pytest.raises(InputError, match=r"not UTF-8 text \(byte 3 is 0xff\)"):
        load([str(path)])


def test_directory_reads_manifests_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("b: 1\n")
    (tmp_path / "a.yml").write_text("a: 1\n")
    (tmp_path / "notes.txt").write_text("ignored")
    docs = load([str(tmp_path)])
    assert [d.data for d in docs] == [{"a": 1}, {"b": 1}]


def test_stdin() -> None:
    docs = load(["-"], stdin=io.BytesIO(b"a: 1\n---\nb: 2\n"))
    assert [d.source for d in docs] == ["<stdin>", "<stdin>"]
