"""OpenLineage: contributions, transformations, merges and promotions as RunEvents.

When the OpenLineage client is configured the way it is everywhere (``OPENLINEAGE_URL``,
``OPENLINEAGE_CONFIG``, ``OPENLINEAGE__TRANSPORT__*`` variables, or an ``openlineage.yml`` in the
working directory), every committed ``contribution.submitted``, ``transformation.recorded``,
``contribution.merged`` and ``version.promoted`` event is sent as a START and a COMPLETE RunEvent
through the client's own transport (HTTP, file, Kafka...). Jobs and datasets live in the namespace
``dataward://WARD_ID``; datasets carry the standard ``version`` facet and a ``dataward`` facet with
their content digest. The ledger stays the source of truth: a lineage backend that cannot be reached
is logged, never a reason to fail a use case that is already committed.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from dataward.catalog.tables import contributions, datasets, sources, transformations, versions
from dataward.ledger.events import Event
from dataward.service.core import Service

log = logging.getLogger(__name__)

PRODUCER = "https://dataward.dev/openlineage"
LINEAGE_TYPES = frozenset(
    {"contribution.submitted", "transformation.recorded", "contribution.merged", "version.promoted"}
)


def lineage_configured() -> bool:
    """Whether the OpenLineage client has been configured by its usual means (and not disabled)."""
    if os.environ.get("OPENLINEAGE_DISABLED", "").lower() in ("1", "true"):
        return False
    if any(k in os.environ for k in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG")):
        return True
    if any(k.startswith("OPENLINEAGE__TRANSPORT") for k in os.environ):
        return True
    return Path("openlineage.yml").is_file()


def _facet_classes() -> tuple[Any, Any]:
    import attr
    from openlineage.client.facet_v2 import DatasetFacet

    @attr.define
    class DatawardDatasetFacet(DatasetFacet):  # type: ignore[misc]
        """The content digest of a dataward dataset (a version's manifest, a contribution's content
        hash, a source's raw-file hash) and, for a version, its stage."""

        digest: str = attr.field(default="")
        kind: str = attr.field(default="")
        stage: str | None = attr.field(default=None)

        @staticmethod
        def _get_schema() -> str:
            return f"{PRODUCER}/DatawardDatasetFacet.json"

    from openlineage.client.facet_v2 import dataset_version_dataset

    return DatawardDatasetFacet, dataset_version_dataset.DatasetVersionDatasetFacet


class LineageService(Service):
    """Sends committed events to OpenLineage (run after each use case, see ``WardContext.after_commit``)."""

    _lineage_client: Any = None

    def send(self, events: list[Event]) -> None:
        """After a committed use case: its lineage events, when OpenLineage is configured."""
        wanted = [e for e in events if e.type in LINEAGE_TYPES]
        if not wanted or not lineage_configured():
            return
        try:
            with self.db.reading() as conn:
                runs = [self._run_events(conn, e) for e in wanted]
            client = self._client()
            for pair in runs:
                for run_event in pair:
                    client.emit(run_event)
        except Exception as exc:  # any transport failure: the use case is committed
            log.warning("OpenLineage events for event(s) %s were not sent: %s", [e.seq for e in wanted], exc)

    def _client(self) -> Any:
        if self._lineage_client is None:
            from openlineage.client import OpenLineageClient

            self._lineage_client = OpenLineageClient()
        return self._lineage_client

    def _run_events(self, conn: Connection, e: Event) -> list[Any]:
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState

        facet, version_facet = _facet_classes()
        ns = f"dataward://{self.ward_id}"

        def ds(name: str, digest: str | None, kind: str, stage: str | None = None, namespace: str = ns) -> Any:
            facets = {"dataward": facet(digest=digest or "", kind=kind, stage=stage, producer=PRODUCER)}
            if digest:
                facets["version"] = version_facet(datasetVersion=digest, producer=PRODUCER)
            return {"namespace": namespace, "name": name, "facets": facets}

        names = {r.id: r.name for r in conn.execute(select(datasets.c.id, datasets.c.name))}
        subject, payload = e.subject, e.payload or {}
        dataset = names.get(subject.get("dataset", ""), subject.get("dataset", ""))
        inputs: list[dict[str, Any]] = []
        outputs: list[dict[str, Any]] = []
        if e.type == "contribution.submitted":
            c = conn.execute(select(contributions).where(contributions.c.id == subject["contribution"])).one()
            src = conn.execute(select(sources).where(sources.c.id == c.source_id)).first()
            if src is not None and not src.uri.startswith("transformation:"):
                inputs.append(ds(src.uri, src.raw_hash, "source", namespace=_source_namespace(src.uri)))
            outputs.append(ds(f"{dataset}#{c.number}", c.content_hash, "contribution"))
            job = f"{dataset}.contribute"
        elif e.type == "transformation.recorded":
            t = conn.execute(select(transformations).where(transformations.c.id == subject["transformation"])).one()
            c = conn.execute(select(contributions).where(contributions.c.id == t.contribution_id)).one()
            inputs = [ds(i["ref"], i["manifest"], "version") for i in json.loads(t.inputs)]
            outputs.append(ds(f"{dataset}#{c.number}", c.content_hash, "contribution"))
            job = f"{dataset}.transform.{t.name}"
        elif e.type == "contribution.merged":
            c = conn.execute(select(contributions).where(contributions.c.id == subject["contribution"])).one()
            v = conn.execute(select(versions).where(versions.c.id == subject["version"])).one()
            inputs.append(ds(f"{dataset}#{c.number}", c.content_hash, "contribution"))
            if v.parent_id:
                p = conn.execute(select(versions).where(versions.c.id == v.parent_id)).one()
                inputs.append(ds(f"{dataset}@v{p.number}", p.manifest_object, "version"))
            outputs.append(ds(f"{dataset}@v{v.number}", v.manifest_object, "version", "candidate"))
            job = f"{dataset}.merge"
        else:  # version.promoted
            v = conn.execute(select(versions).where(versions.c.id == subject["version"])).one()
            inputs.append(ds(f"{dataset}@v{v.number}", v.manifest_object, "version", payload.get("from")))
            outputs.append(ds(f"{dataset}@v{v.number}", v.manifest_object, "version", payload.get("stage")))
            job = f"{dataset}.promote"
        # One run per ledger event, its id derived from the event hash: re-sending is idempotent.
        run = Run(runId=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ns}/{e.hash}")))
        made = []
        for state in (RunState.START, RunState.COMPLETE):
            made.append(
                RunEvent(
                    eventType=state,
                    eventTime=e.time,
                    run=run,
                    job=Job(namespace=ns, name=job),
                    producer=PRODUCER,
                    inputs=[InputDataset(**d) for d in inputs],
                    outputs=[OutputDataset(**d) for d in outputs],
                )
            )
        return made


def _source_namespace(uri: str) -> str:
    """OpenLineage's dataset naming: the scheme and authority of a URI are its namespace."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return "dataward-source"
    return f"{scheme}://{rest.split('/', 1)[0]}"


__all__ = ["LINEAGE_TYPES", "LineageService", "lineage_configured"]
