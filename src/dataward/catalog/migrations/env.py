"""Alembic environment: runs migrations on the connection the catalog hands over."""

from alembic import context

from dataward.catalog.tables import metadata

target_metadata = metadata
config = context.config
connection = config.attributes.get("connection")

if connection is None:
    # Used by `alembic revision --autogenerate` during development: a URL from the ini/command line.
    from sqlalchemy import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
