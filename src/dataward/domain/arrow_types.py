"""How each kind of column is stored in Arrow.

Apart from ``dataward.domain.schema`` so that reading a schema does not import pyarrow: a command that
only opens the ward (whoami, the ledger) reads schemas and stores no table.
"""

from __future__ import annotations

import pyarrow as pa

from dataward.domain.schema import ColumnKind

ARROW_TYPES: dict[ColumnKind, pa.DataType] = {
    ColumnKind.TEXT: pa.large_string(),
    ColumnKind.IMAGE: pa.large_binary(),
    ColumnKind.NUMERIC: pa.float64(),
    ColumnKind.CATEGORICAL: pa.string(),
    ColumnKind.EMBEDDING: pa.list_(pa.float32()),
}
LABEL_ARROW_TYPE = pa.string()
