"""What the SQL store runs on: a connector per engine, and the engine's dialect as data.

Statements are written once, with `:name` parameters and a few `{fields}` (the lease clock,
`FOR UPDATE SKIP LOCKED`, ...); `Dialect.render` makes them what one engine takes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
Row = tuple[Any, ...]
Params = Mapping[str, Any]
NO_PARAMS: Params = MappingProxyType({})


@dataclass(frozen=True)
class Locks:
    """The rows a submit or finish will lock, named for PostgreSQL's group commit
    (`imagehub.store.group_commit`): a submit's tenant (its fair-queue row) and key, a
    finish's task and, when it `settles` the task, the key its reservation names."""

    tenant_id: str | None = None
    key_id: str | None = None
    task_id: str | None = None
    settles: bool = False


_PARAM = re.compile(r"(?<![:\w]):([a-z_]+)")


@dataclass(frozen=True)
class Dialect:
    name: str
    #: a named parameter, for `str.format`: `:{}` or `%({})s`
    param: str
    #: the lease clock: SQLite's is the `now` its connector passes, PostgreSQL's the database's
    now: str
    #: taking due rows: concurrent claimers skip each other's (PostgreSQL), or the one writer
    skip_locked: str
    #: locking the rows a subquery picks, in its order (PostgreSQL), or the one writer
    for_update: str
    #: the larger of two values
    greatest: str
    #: `output` with its images dropped and marked purged (the column keeps JSON as text)
    purged_output: str
    #: serialises writers of one tenant's secrets; SQLite has a single writer already
    secret_lock: str | None
    #: a WITH clause may write (PostgreSQL): a submit's writes, and a finish's, go as one
    #: statement each, whose parsing, binding and round trip cost less than a transaction's many
    writing_with: bool = False
    #: the migrations' type names
    types: Mapping[str, str] = field(default_factory=dict)

    @functools.cache  # noqa: B019 - dialects are module constants, never collected
    def render(self, sql: str) -> str:
        """A statement as this engine takes it."""
        with_params = _PARAM.sub(lambda m: self.param.format(m.group(1)), sql)
        return with_params.format(
            now=self.now,
            skip_locked=self.skip_locked,
            for_update=self.for_update,
            greatest=self.greatest,
            purged_output=self.purged_output,
        )

    def __hash__(self) -> int:
        return hash(self.name)


SQLITE = Dialect(
    name="sqlite",
    param=":{}",
    now=":now",
    skip_locked="",
    for_update="",
    greatest="max",
    purged_output=("json_set(json_set(output, '$.images', json('[]')), '$.purged', json('true'))"),
    secret_lock=None,
    types={"real": "REAL", "counter": "INTEGER"},
)

POSTGRES = Dialect(
    name="postgres",
    param="%({})s",
    now="extract(epoch FROM clock_timestamp())::float8",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    for_update=" FOR UPDATE",
    greatest="GREATEST",
    purged_output=(
        "jsonb_set(jsonb_set(output::jsonb, '{images}', '[]'::jsonb),"
        " '{purged}', 'true'::jsonb)::text"
    ),
    secret_lock=(
        "SELECT pg_advisory_xact_lock(hashtextextended('webhook-secret:' || :tenant_id, 0))"
    ),
    types={"real": "DOUBLE PRECISION", "counter": "BIGINT"},
    writing_with=True,
)


class Executor(Protocol):
    """Where statements run: a connector, or one of its transactions."""

    async def execute(self, sql: str, params: Params = NO_PARAMS) -> int:
        """Run a statement; the number of rows it changed."""

    async def send(self, sql: str, params: Params = NO_PARAMS) -> None:
        """Run a statement whose outcome nobody reads.

        In a transaction it may travel with the statements after it (PostgreSQL pipelines
        them: one round trip); a failure then surfaces at the next result, or at commit.
        """

    async def fetch_one(self, sql: str, params: Params = NO_PARAMS) -> Row | None: ...

    async def fetch_all(self, sql: str, params: Params = NO_PARAMS) -> list[Row]: ...


class BaseConnector(Executor, Protocol):
    """One engine: its dialect, connections, transactions and schema versioning."""

    dialect: Dialect

    async def open(self, *, migrate: bool = True) -> None:
        """Connect; bring the schema up to date, or check it is (`migrate=False`)."""

    async def close(self) -> None: ...

    async def migrate(self) -> int:
        """Apply the missing schema steps; return the schema version."""

    async def transaction(self, fn: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        """`fn`'s statements, committed together or not at all (when `fn` raises).

        `fn` awaits nothing but its statements: SQLite runs it whole on its writer thread.
        """
