"""Alembic's entry for the feedback store: run on the connection `FeedbackStore.migrate` gives.

There is no alembic.ini: the store builds the configuration in code, so the web UI and the
trainer upgrade the same way. The version table has its own name (the store may share a
database with MLflow, whose schema is alembic's too).
"""

from alembic import context

from corrections.store import VERSION_TABLE

context.configure(connection=context.config.attributes["connection"],
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
