"""A trace's note on a quarantine the restored catalog never held says nothing to a caller who may not
trace its dataset.

After a restore from a backup older than a quarantined contribution, ``trace`` of its id, or of a record
it added, finds nothing in the catalog and adds that the ward's list of removals holds it quarantined
(the event, the contribution's id). That note is for callers who may trace the contribution's dataset:
one whose role is on another dataset gets the same not-found answer as for an id that never existed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataward.domain.errors import NotFound
from dataward.domain.schema import Schema
from dataward.service.recordstore import read_ids
from dataward.service.ward import Ward
from tests.helpers import wine_rows, wine_schema_specs
from tests.provenance.restore_drill import quarantined_after_the_backup
from tests.security.test_restore_removals import LIST


def test_the_note_is_only_for_those_who_may_trace_the_dataset(wine_ward: Ward, tmp_path: Path) -> None:
    folder = quarantined_after_the_backup(wine_ward, tmp_path, wine_rows(100, 130))
    line = json.loads((folder / LIST).read_text().splitlines()[-1])
    (cid,) = line["contributions"]
    admin = Ward.open(folder)
    label, specs = wine_schema_specs()
    admin.create_dataset("other", Schema.parse(label, specs))
    for name, scope in (("bob", "dataset:wine"), ("carol", "dataset:other")):
        admin.create_principal(name)
        admin.grant(name, "reader", scope)
    bob, carol = (admin.as_key(admin.issue_key(name)["key"]) for name in ("bob", "carol"))
    record = read_ids(admin.store, line["held"][0])[0]
    for ref, unknown in ((cid, "c_" + "0" * len(cid[2:])), (record, "0" * 64)):
        with pytest.raises(NotFound, match=rf"list of removals holds contribution {cid}"):
            bob.trace(ref)
        with pytest.raises(NotFound) as shown:
            carol.trace(ref)
        with pytest.raises(NotFound) as never:
            carol.trace(unknown)
        assert "list of removals" not in shown.value.message
        assert shown.value.message.replace(ref, "REF") == never.value.message.replace(unknown, "REF")
