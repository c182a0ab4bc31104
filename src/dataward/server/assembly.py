"""The ward a server process serves: a ward folder, or a ward assembled from its parts.

``dataward serve --catalog URL --store LOCATION --signing-key FILE`` serves a ward that has no
folder on the server: its catalog is a database (PostgreSQL), its objects an object store, and its
signing key a file readable by the server's account only. The server keeps its own working files
(job states, uploads in flight, console sessions, kept checkpoints and the served ward's settings)
in a private state folder. The catalog's credentials are never written there: the state folder's
``ward.json`` records the catalog URL with its password hidden.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from dataward.catalog.database import CatalogDatabase
from dataward.catalog.tables import ward_meta
from dataward.domain.errors import InputError, NotFound
from dataward.ledger.events import format_time, utc_now
from dataward.ledger.signing import WardSigner
from dataward.service.config import WARD_FILE, WardConfig
from dataward.service.signed_witness import signed_witness
from dataward.service.ward import Ward
from dataward.store import open_store


def default_state_folder(ward_id: str) -> Path:
    """``$XDG_STATE_HOME/dataward/WARD_ID`` (``~/.local/state/dataward/WARD_ID``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "dataward" / ward_id


def hidden_password(url: str) -> str:
    """The catalog URL as it may be written down or logged: its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise InputError(f"--catalog is not a database URL: {url.split('@')[-1]!r}") from None


def catalog_identity(db: CatalogDatabase) -> tuple[str, str]:
    """The ward id and public key a catalog belongs to (NotFound when it is no ward's catalog)."""
    try:
        with db.engine.connect() as conn:
            has_ward = inspect(conn).has_table(ward_meta.name)
            meta = dict(conn.execute(select(ward_meta.c.key, ward_meta.c.value)).all()) if has_ward else {}
    except SQLAlchemyError as exc:
        raise NotFound(
            f"cannot read a ward from the catalog {hidden_password(db.url)}: {type(exc).__name__}",
            hint="create the ward with `dataward init PATH --catalog URL --store LOCATION`; check the URL and "
            "that the database is reachable (a password belongs in PGPASSWORD or ~/.pgpass, not the command line)",
        ) from None
    if "ward_id" not in meta or "public_key" not in meta:
        raise NotFound(f"the catalog {hidden_password(db.url)} holds no ward", hint="create one with `dataward init`")
    return meta["ward_id"], meta["public_key"]


def assemble_ward(catalog_url: str, store_url: str, signing_key: Path, state: Path | None = None) -> Ward:
    """Open the ward whose catalog is at ``catalog_url``, objects at ``store_url`` and signing key in
    ``signing_key``, with ``state`` (default: ``default_state_folder``) as its server's working folder.

    Refuses a signing key that is not the one the catalog's ledger was signed with, and a state
    folder that belongs to another ward."""
    hidden_password(catalog_url)  # a malformed URL is an InputError, named without its password
    signer = WardSigner.load(Path(signing_key))
    db = CatalogDatabase(catalog_url)
    try:
        ward_id, public_key = catalog_identity(db)
        if public_key != signer.public_key_b64:
            raise InputError(
                f"the signing key {signing_key} is not the key of ward {ward_id}",
                hint="pass the ward's own keys/ward-ed25519.pem; the catalog's ledger was signed with another key",
            )
        db.migrate_if_behind()
        folder = Path(state) if state is not None else default_state_folder(ward_id)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if (folder / WARD_FILE).exists():
            config = WardConfig.load(folder)
            if config.ward_id != ward_id:
                raise InputError(
                    f"the state folder {folder} belongs to ward {config.ward_id}, not {ward_id}",
                    hint="give each served ward its own --state folder",
                )
        else:
            # A new state folder starts with the witness the ledger names (only that one is used;
            # ``verify`` reports a ward.json that disagrees with it).
            with db.reading() as conn:
                witness = signed_witness(conn).location
            WardConfig(
                ward_id=ward_id,
                catalog_url=hidden_password(catalog_url),
                store_url=str(store_url),
                created_at=format_time(utc_now()),
                witness=witness,
            ).save(folder)
        store = open_store(str(store_url))
    except BaseException:
        db.dispose()
        raise
    return Ward(folder.resolve(), db, store, signer, credential=None, ward_id=ward_id)
