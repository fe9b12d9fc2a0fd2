"""The migrations build exactly the schema the models declare: a column added to a model without a
migration (or the other way round) fails here, not on an office's database after an upgrade."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import workflows.all_models  # noqa: F401  (every table registered on the metadata)
from workflows.models import Base


def _diff(connection) -> list:
    ctx = MigrationContext.configure(connection, opts={"compare_type": False})
    return compare_metadata(ctx, Base.metadata)


async def test_migrated_schema_matches_the_models(engine):
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == [], "\n".join(map(str, diff))
