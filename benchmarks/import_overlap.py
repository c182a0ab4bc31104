"""Would the import gain from hashing record ids while the chunk is encoded? The two steps, alone,
one after the other, and side by side on two threads, on the same records.

The import hashes every record (BLAKE3 over its canonical encoding, ``record_digest_array``, on two
threads) and then encodes the new records' chunk (``table_to_parquet``, on a pool thread beside the
index work). A pipeline would encode row groups while later ones are hashed. It pays only if the two
steps leave a core idle between them; if side by side takes as long as one after the other, the cores
are busy and only less work would make the import faster. One JSON line on standard output::

    python -m benchmarks.import_overlap --records 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.bench_import import TEXT_SCHEMA, make_text_csv
from dataward.domain.records import record_digest_array
from dataward.domain.schema import RECORD_ID
from dataward.io import read_table
from dataward.store.tables import binary_id_array, table_to_parquet


def _best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    source = Path(tempfile.mkdtemp(prefix="dataward-overlap-")) / "records.csv"
    make_text_csv(source, args.records, args.seed)
    imported = read_table(source, TEXT_SCHEMA)
    content = imported.content
    chunk = content.add_column(0, RECORD_ID, binary_id_array(imported.digests))

    def ids() -> None:
        record_digest_array(TEXT_SCHEMA, content)

    def encode() -> None:
        table_to_parquet(chunk)

    def one_after_the_other() -> None:
        ids()
        encode()

    def side_by_side() -> None:
        with ThreadPoolExecutor(1) as pool:
            encoding = pool.submit(encode)
            ids()
            encoding.result()

    figures = {
        "ids_seconds": _best(ids, args.repeat),
        "chunk_encode_seconds": _best(encode, args.repeat),
        "one_after_the_other_seconds": _best(one_after_the_other, args.repeat),
        "side_by_side_seconds": _best(side_by_side, args.repeat),
    }
    figures["saved_by_overlap"] = 1 - figures["side_by_side_seconds"] / figures["one_after_the_other_seconds"]
    print(
        json.dumps(
            {
                "records": args.records,
                "repeat": args.repeat,
                "load_average_at_end": list(os.getloadavg()),
                **{k: round(v, 6) for k, v in figures.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
