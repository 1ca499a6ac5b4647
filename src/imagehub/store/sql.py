"""The SQL store: tasks, keys and webhooks written once over an engine's connector."""

from __future__ import annotations

from imagehub.store.connector import BaseConnector
from imagehub.store.sql_keys import SQLKeys
from imagehub.store.sql_tasks import SQLTasks
from imagehub.store.sql_webhooks import SQLWebhooks


class SQLStore(SQLTasks, SQLKeys, SQLWebhooks):
    """All three stores over one connector, so a task's writes share its transactions."""

    def __init__(self, connector: BaseConnector, *, migrate: bool = True) -> None:
        self.db = connector
        self.migrate_on_open = migrate

    async def open(self) -> None:
        await self.db.open(migrate=self.migrate_on_open)

    async def close(self) -> None:
        await self.db.close()

    async def ping(self) -> None:
        await self.db.fetch_one("SELECT 1")

    async def migrate(self) -> int:
        """Bring the schema up to date (whatever `migrate` was set to); return the version."""
        return await self.db.migrate()
