"""File import and export: CSV, JSON Lines, Parquet and image folders to and from canonical tables."""

from __future__ import annotations

from dataward.io.readers import FORMATS, ImportedTable, detect_format, format_of_extension, read_table
from dataward.io.record_id_list import read_record_ids
from dataward.io.writers import EXPORT_FORMATS, write_table

__all__ = [
    "EXPORT_FORMATS",
    "FORMATS",
    "ImportedTable",
    "detect_format",
    "format_of_extension",
    "read_record_ids",
    "read_table",
    "write_table",
]
