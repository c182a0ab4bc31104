"""Hostile files are refused by a named limit before they cost time or memory, and nothing is stored.

Each test plays one input from the hostile review: a 50 MB line, a file or row count past the limit,
JSON nested a hundred thousand deep, a PNG that decodes to ten gigabytes, a NUL byte in a CSV value.
"Quickly" is shown by which check refused the input (the limit, before any parser ran), never by a
clock.
"""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataward.domain.errors import InputError
from dataward.domain.limits import DEFAULT_LIMITS, InputLimits, MiB
from dataward.gates import scan
from dataward.gates.features.image import decode_image
from dataward.io import csv_reader, jsonl_reader, read_table
from dataward.service.config import WardConfig
from dataward.service.ward import Ward
from tests.security.hostile_inputs import (
    IMAGE_SCHEMA,
    TEXT_SCHEMA,
    bomb_png,
    nested_json,
    real_png,
    small_png,
    ward_state,
)


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    admin, _ = Ward.init(tmp_path / "ward")
    admin.create_dataset("texts", TEXT_SCHEMA)
    admin.create_dataset("pictures", IMAGE_SCHEMA)
    return admin


@pytest.fixture
def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every parser fail the test: a refusal must come from a limit checked before parsing.

    JSON Lines is streamed, so the lines before an over-limit line may be parsed (a block of them
    at a time); the parser must never be handed the over-limit line itself.
    """

    def parsed(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the file was parsed before its limit refused it")

    real_fast = jsonl_reader._fast

    def fast_before_the_limit(data: bytes, schema: Any) -> Any:
        if len(data) > 1 << 20:
            raise AssertionError("the over-limit line was handed to the parser")
        return real_fast(data, schema)

    monkeypatch.setattr(csv_reader, "_parse", parsed)
    monkeypatch.setattr(jsonl_reader, "_fast", fast_before_the_limit)
    monkeypatch.setattr(jsonl_reader, "_line_by_line", parsed)


def _refused(ward: Ward, dataset: str, path: Path, limit: str, **kwargs: Any) -> InputError:
    """Contribute ``path``; assert it is refused by ``limit`` and that the ward is unchanged."""
    before = ward_state(ward)
    with pytest.raises(InputError) as caught:
        ward.contribute(dataset, path, source="https://hostile.example/", gate=False, **kwargs)
    error = caught.value
    assert error.details.get("limit") == limit, error
    assert limit in error.message
    # The hint says how to raise it, for one import and for the ward.
    assert f"--limit {limit}=" in (error.hint or "")
    assert '"input_limits"' in (error.hint or "")
    assert ward_state(ward) == before
    return error


def _set_ward_limits(ward: Ward, limits: dict[str, Any]) -> None:
    config = WardConfig.load(ward.folder)
    WardConfig(**{**config.__dict__, "input_limits": limits}).save(ward.folder)


# --- a huge record --------------------------------------------------------------------------------


def test_a_50_mb_json_lines_record_is_refused_by_the_record_limit_before_parsing(
    ward: Ward, tmp_path: Path, no_parsing: None
) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("w") as out:
        out.write('{"text": "fine", "label": "a"}\n')
        out.write('{"text": "' + "x" * (50 * 1000 * 1000) + '", "label": "b"}\n')
        out.write('{"text": "never read", "label": "a"}\n')
    error = _refused(ward, "texts", path, "max_record_bytes")
    assert error.details["line"] == 2
    assert "16 MiB" in error.message


def test_a_huge_csv_line_is_refused_and_so_is_a_huge_record_spread_over_short_lines(ward: Ward, tmp_path: Path) -> None:
    long_line = tmp_path / "long.csv"
    long_line.write_text("text,label\nfine,a\n" + "y" * 5000 + ",b\n")
    error = _refused(ward, "texts", long_line, "max_record_bytes", limits={"max_record_bytes": "4KiB"})
    assert error.details["line"] == 3
    # A quoted value may hold line breaks: each line is short, the record is not.
    spread = tmp_path / "spread.csv"
    spread.write_text('text,label\nfine,a\n"' + ("z" * 100 + "\n") * 60 + '",b\n')
    error = _refused(ward, "texts", spread, "max_record_bytes", limits={"max_record_bytes": "4KiB"})
    assert error.details["line"] == 3


def test_a_record_limit_raised_in_ward_json_or_for_one_import_lets_the_same_file_in(ward: Ward, tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("text,label\n" + "w" * 3000 + ",a\nshort,b\n")
    _set_ward_limits(ward, {"max_record_bytes": "2KiB"})
    _refused(ward, "texts", path, "max_record_bytes")
    accepted = ward.contribute("texts", path, source="s", gate=False, limits={"max_record_bytes": "4KiB"})
    assert accepted["added"] == 2
    _set_ward_limits(ward, {"max_record_bytes": 8192})
    path.write_text("text,label\n" + "v" * 3000 + ",a\n")
    assert ward.contribute("texts", path, source="s", gate=False)["added"] == 1


def test_a_bad_limit_setting_is_refused_with_the_names_of_the_limits(ward: Ward, tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text("text,label\nfine,a\n")
    with pytest.raises(InputError, match="unknown input limit 'max_lines'"):
        ward.contribute("texts", path, source="s", gate=False, limits={"max_lines": 3})
    with pytest.raises(InputError, match="max_rows must be a number or a size"):
        ward.contribute("texts", path, source="s", gate=False, limits={"max_rows": "lots"})
    _set_ward_limits(ward, {"max_depth": 0})
    with pytest.raises(InputError, match=r"ward\.json: input_limits: the input limit max_depth must be a positive"):
        ward.contribute("texts", path, source="s", gate=False)


# --- a huge file, too many rows -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_a_file_over_the_size_limit_is_refused_before_it_is_read(
    ward: Ward, tmp_path: Path, suffix: str, no_parsing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = pd.DataFrame({"text": [f"record {i}" for i in range(2000)], "label": ["a", "b"] * 1000})
    path = tmp_path / f"big.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)
    elif suffix == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    monkeypatch.setattr(pq, "ParquetFile", lambda *_a, **_k: pytest.fail("the Parquet file was opened"))
    error = _refused(ward, "texts", path, "max_file_bytes", limits={"max_file_bytes": 1000})
    assert f"{path.stat().st_size:,} bytes" in error.message


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_more_rows_than_the_limit_are_refused(ward: Ward, tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({"text": [f"record {i}" for i in range(50)], "label": ["a", "b"] * 25})
    path = tmp_path / f"rows.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)
    elif suffix == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    _refused(ward, "texts", path, "max_rows", limits={"max_rows": 10})
    assert ward.contribute("texts", path, source="s", gate=False, limits={"max_rows": 50})["added"] == 50


def test_parquet_is_refused_from_its_footer_and_read_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "wide.parquet"
    texts = ["t" * 1000 + str(i) for i in range(3000)]
    pq.write_table(pa.table({"text": texts, "label": ["a"] * 3000}), path, compression="zstd")
    # Compressed to almost nothing; the footer declares the decompressed size.
    assert path.stat().st_size < 100_000
    with pytest.raises(InputError) as caught:
        read_table(path, TEXT_SCHEMA, limits={"max_decompressed_bytes": "1MiB"})
    assert caught.value.details["limit"] == "max_decompressed_bytes"
    with pytest.raises(InputError) as caught:
        read_table(path, TEXT_SCHEMA, limits={"max_record_bytes": 500})
    assert caught.value.details == {**caught.value.details, "limit": "max_record_bytes", "row": 1}
    assert len(read_table(path, TEXT_SCHEMA)) == 3000


# --- nesting --------------------------------------------------------------------------------------


def test_json_nested_a_hundred_thousand_deep_is_refused_not_a_crash(ward: Ward, tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(
        '{"text": "fine", "label": "a"}\n{"text": "x", "label": "b", "extra": ' + nested_json(100_000) + "}\n"
    )
    error = _refused(ward, "texts", path, "max_depth")
    assert error.details["line"] == 2
    # Just past the limit is refused too, by the exact count; under a raised limit the line is read
    # and refused for what it is (a column the schema does not declare).
    shallow = tmp_path / "shallow.jsonl"
    shallow.write_text('{"text": "x", "label": "b", "extra": ' + nested_json(40) + "}\n")
    _refused(ward, "texts", shallow, "max_depth")
    with pytest.raises(InputError, match="not in the dataset schema") as caught:
        read_table(shallow, TEXT_SCHEMA, limits={"max_depth": 64})
    assert "limit" not in caught.value.details


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path: Path) -> None:
    path = tmp_path / "brackets.jsonl"
    path.write_text(json.dumps({"text": "[" * 100 + "{" * 100, "label": "a"}) + "\n")
    assert read_table(path, TEXT_SCHEMA).table.column("text").to_pylist() == ["[" * 100 + "{" * 100]


def test_a_deeply_nested_embedding_in_csv_is_a_bad_value_not_a_crash(tmp_path: Path) -> None:
    from dataward.domain.schema import Column, ColumnKind, Schema

    schema = Schema(label="label", inputs=(Column("emb", ColumnKind.EMBEDDING, dim=2),))
    path = tmp_path / "emb.csv"
    path.write_text('emb,label\n"' + nested_json(100_000) + '",a\n')
    with pytest.raises(InputError, match="nested too deeply") as caught:
        read_table(path, schema, limits={"max_record_bytes": "1MiB"})
    assert caught.value.details["line"] == 2


def test_a_deeply_nested_removal_list_is_refused(ward: Ward, tmp_path: Path) -> None:
    path = tmp_path / "removes.jsonl"
    path.write_text('{"record_id": ' + nested_json(100_000) + "}\n")
    before = ward_state(ward)
    with pytest.raises(InputError, match="nested too deeply"):
        ward.contribute("texts", removes=path, source="s", gate=False)
    assert ward_state(ward) == before


# --- decompression bombs --------------------------------------------------------------------------


def test_a_decompression_bomb_in_an_image_folder_is_refused_from_its_header(ward: Ward, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "1.png").write_bytes(small_png())
    (folder / "cat" / "2.png").write_bytes(bomb_png())
    error = _refused(ward, "pictures", folder, "max_image_pixels")
    assert str(folder) in error.message
    assert error.details["file"] == "cat/2.png" and error.details["column"] == "image"


def test_an_image_over_a_lowered_pixel_limit_is_refused_in_every_format(ward: Ward, tmp_path: Path) -> None:
    large = real_png(2000, 1000)  # genuine, 2 million pixels, a few kilobytes
    parquet = tmp_path / "images.parquet"
    pq.write_table(pa.table({"image": [small_png(), large], "label": ["a", "b"]}), parquet)
    error = _refused(ward, "pictures", parquet, "max_image_pixels", limits={"max_image_pixels": 1_000_000})
    assert error.details["row"] == 2
    assert "2000 x 1000" in error.message
    text = tmp_path / "images.csv"
    with text.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["image", "label"])
        writer.writerow([base64.b64encode(large).decode(), "b"])
    error = _refused(ward, "pictures", text, "max_image_pixels", limits={"max_image_pixels": 1_000_000})
    assert error.details["line"] == 2
    assert ward.contribute("pictures", text, source="s", gate=False)["added"] == 1


def test_a_decompression_bomb_in_base64_json_lines_is_refused(ward: Ward, tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl"
    path.write_text(json.dumps({"image": base64.b64encode(bomb_png()).decode(), "label": "a"}) + "\n")
    error = _refused(ward, "pictures", path, "max_image_pixels")
    assert error.details["line"] == 1


def test_scan_refuses_a_decompression_bomb_in_the_contribution_before_decoding_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataward.gates.features import image as image_features

    monkeypatch.setattr(
        image_features.Pixels, "_pixels", lambda *_a: pytest.fail("images were decoded before the check")
    )
    baseline = pd.DataFrame({"image": [small_png(v) for v in range(0, 200, 10)], "label": ["a", "b"] * 10})
    # Past Pillow's own refusal (twice its warning size), and between the two: refused either way.
    for side, named in ((100_000, "decompression bomb"), (12_000, "12000 x 12000")):
        contribution = pd.DataFrame({"image": [small_png(5), bomb_png(side, side)], "label": ["a", "b"]})
        with pytest.raises(InputError) as caught:
            scan(baseline, contribution, IMAGE_SCHEMA)
        assert caught.value.details["limit"] == "max_image_pixels"
        assert "row 2" in caught.value.message and named in caught.value.message
    moderate = pd.DataFrame({"image": [small_png(5), real_png(1500, 1000)], "label": ["a", "b"]})
    with pytest.raises(InputError, match="max_image_pixels"):
        scan(baseline, moderate, IMAGE_SCHEMA, limits={"max_image_pixels": 1_000_000})


def test_decoding_a_bomb_for_the_gate_is_an_input_error_not_pillows_exception() -> None:
    with pytest.raises(InputError) as caught:
        decode_image(bomb_png(), row=3)
    assert caught.value.details["limit"] == "max_image_pixels"
    assert "row 3" in caught.value.message
    with pytest.raises(InputError, match="cannot be decoded"):
        decode_image(b"\x89PNG\r\n\x1a\n garbage")


# --- NUL bytes and the csv module's process-wide setting ------------------------------------------


def test_a_nul_byte_in_a_csv_value_is_kept_exactly_as_documented(ward: Ward, tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b'text,label\n"hidden\x00trigger",a\nplain,b\n')
    imported = read_table(path, TEXT_SCHEMA)
    assert imported.table.column("text").to_pylist() == ["hidden\x00trigger", "plain"]
    # The id covers every character: the text cut at the NUL is another record.
    truncated = tmp_path / "truncated.csv"
    truncated.write_bytes(b"text,label\nhidden,a\nplain,b\n")
    assert read_table(truncated, TEXT_SCHEMA).record_ids[0] != imported.record_ids[0]
    info = ward.contribute("texts", path, source="s", gate=False)
    assert info["added"] == 2
    # JSON output shows it escaped, so a reviewer sees it rather than a string cut short.
    assert "\\u0000" in json.dumps(imported.table.column("text").to_pylist())


def test_reading_csv_leaves_the_process_wide_field_limit_alone(tmp_path: Path) -> None:
    before = csv.field_size_limit()
    fine = tmp_path / "fine.csv"
    fine.write_text('text,label\n"' + "q" * 200_000 + '\n",a\n')
    assert len(read_table(fine, TEXT_SCHEMA)) == 1
    assert csv.field_size_limit() == before
    broken = tmp_path / "broken.csv"
    broken.write_text('text,label\n"' + "q" * 5000 + "\n" * 3 + '",a,extra\n')
    with pytest.raises(InputError):
        read_table(broken, TEXT_SCHEMA, limits={"max_record_bytes": 1000})
    assert csv.field_size_limit() == before


def test_the_default_limits_admit_ordinary_large_inputs() -> None:
    assert DEFAULT_LIMITS.max_record_bytes == 16 * MiB
    assert InputLimits.coerce({"max_record_bytes": "64MiB"}).max_record_bytes == 64 * MiB
    assert InputLimits.coerce({"max_rows": "1.5M"}).max_rows == 1_500_000


def test_a_json_lines_file_starting_with_null_is_refused_not_a_crash(tmp_path: Path) -> None:
    # pyarrow's JSON reader crashed the whole process (segmentation fault) on this file.
    path = tmp_path / "null.jsonl"
    for text in ("null", 'null\n{"text": "a", "label": "b"}\n', "  null\n", "\r\nnull\n"):
        path.write_text(text)
        with pytest.raises(InputError, match="not an object") as caught:
            read_table(path, TEXT_SCHEMA)
        assert caught.value.details["line"] == text.split("null")[0].count("\n") + 1


def test_the_command_line_raises_a_limit_for_one_import(ward: Ward, tmp_path: Path, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from dataward.cli.app import app

    monkeypatch.setenv("DATAWARD_WARD", str(ward.folder))
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    path = tmp_path / "long.csv"
    path.write_text("text,label\n" + "u" * 3000 + ",a\n")
    base = ["contribute", "texts", str(path), "--source", "s", "--no-gate", "--json"]
    runner = CliRunner()
    before = ward_state(ward)
    refused = runner.invoke(app, [*base, "--limit", "max_record_bytes=2KiB"])
    assert refused.exit_code == 2
    error = json.loads(refused.stdout)
    assert error["details"]["limit"] == "max_record_bytes" and "--limit max_record_bytes=" in error["hint"]
    malformed = runner.invoke(app, [*base, "--limit", "max_record_bytes"])
    assert malformed.exit_code == 2 and "NAME=SIZE" in malformed.stdout
    assert ward_state(ward) == before
    accepted = runner.invoke(app, [*base, "--limit", "max_record_bytes=4KiB"])
    assert accepted.exit_code == 0, accepted.stdout
    assert json.loads(accepted.stdout)["added"] == 1


def _lightly_gated_pictures(ward: Ward, tmp_path: Path) -> Path:
    """``pictures`` under the light gate, and a folder of 12 small PNGs (6 cats, 6 dogs) to contribute."""
    from tests.helpers import LIGHT_GATE_POLICY

    ward.set_policy("pictures", LIGHT_GATE_POLICY)
    folder = tmp_path / "images"
    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            (folder / label / f"{i}.png").write_bytes(real_png(20 + i, 20))
    return folder


def test_the_wards_gate_holds_the_contribution_to_the_wards_limits(ward: Ward, tmp_path: Path) -> None:
    folder = _lightly_gated_pictures(ward, tmp_path)
    _set_ward_limits(ward, {"max_image_pixels": 100})
    # Raised for the import only: stored, but the gate judges by the ward's limit and says so.
    with pytest.raises(InputError) as caught:
        ward.contribute("pictures", folder, source="s", limits={"max_image_pixels": 10_000})
    assert "was stored, but its gate could not run" in caught.value.message
    assert "max_image_pixels" in caught.value.message
    _set_ward_limits(ward, {"max_image_pixels": 10_000})
    assert ward.contribute("pictures", folder, source="s")["gate"]["verdict"] in ("pass", "review", "block")


def test_the_wards_gate_refuses_a_batch_over_the_batch_pixel_limit(ward: Ward, tmp_path: Path) -> None:
    folder = _lightly_gated_pictures(ward, tmp_path)
    _set_ward_limits(ward, {"max_batch_pixels": 2_000})  # 12 images of about 500 pixels
    with pytest.raises(InputError) as caught:
        ward.contribute("pictures", folder, source="s")
    assert "its gate could not run" in caught.value.message
    assert "max_batch_pixels" in caught.value.message
    _set_ward_limits(ward, {"max_batch_pixels": "1G"})
    assert ward.contribute("pictures", folder, source="s")["gate"]["verdict"] in ("pass", "review", "block")


def test_an_image_folder_is_held_to_the_row_record_and_total_size_limits(ward: Ward, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "cat").mkdir(parents=True)
    for i in range(5):
        (folder / "cat" / f"{i}.png").write_bytes(small_png(i))
    (folder / "cat" / "big.png").write_bytes(real_png(400, 400) + b"\x00" * 3000)
    size = (folder / "cat" / "big.png").stat().st_size
    _refused(ward, "pictures", folder, "max_rows", limits={"max_rows": 5})
    error = _refused(ward, "pictures", folder, "max_record_bytes", limits={"max_record_bytes": size - 1})
    assert error.details["file"] == "cat/big.png"
    _refused(ward, "pictures", folder, "max_file_bytes", limits={"max_file_bytes": size + 10})


def test_parquet_types_nested_past_the_limit_are_refused_from_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    deep: Any = [1.0, 2.0]
    for _ in range(8):
        deep = [deep]
    pq.write_table(pa.table({"text": ["a"], "label": ["b"], "extra": [deep]}), path)
    with pytest.raises(InputError) as caught:
        read_table(path, TEXT_SCHEMA, limits={"max_depth": 4})
    assert caught.value.details["limit"] == "max_depth" and caught.value.details["column"] == "extra"


def test_a_removal_list_over_the_file_limit_is_refused_unread(ward: Ward, tmp_path: Path) -> None:
    path = tmp_path / "removes.txt"
    path.write_text(("0" * 64 + "\n") * 100)
    before = ward_state(ward)
    with pytest.raises(InputError) as caught:
        ward.contribute("texts", removes=path, source="s", gate=False, limits={"max_file_bytes": 1000})
    assert caught.value.details["limit"] == "max_file_bytes"
    assert ward_state(ward) == before
