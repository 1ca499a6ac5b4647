"""Statements are written once; each engine's dialect renders them."""

from __future__ import annotations

from imagehub.store.connector import POSTGRES, SQLITE
from imagehub.store.schema import migrations

STATEMENT = (
    "UPDATE t SET at = {now} + :seconds, doc = doc::jsonb WHERE id = :id "
    "AND x IN (SELECT id FROM t LIMIT :limit{skip_locked})"
)


def test_sqlite_keeps_named_parameters_and_takes_the_passed_in_clock():
    assert SQLITE.render(STATEMENT) == (
        "UPDATE t SET at = :now + :seconds, doc = doc::jsonb WHERE id = :id "
        "AND x IN (SELECT id FROM t LIMIT :limit)"
    )


def test_postgres_gets_pyformat_parameters_the_database_clock_and_skip_locked():
    assert POSTGRES.render(STATEMENT) == (
        f"UPDATE t SET at = {POSTGRES.now} + %(seconds)s, doc = doc::jsonb WHERE id = %(id)s "
        "AND x IN (SELECT id FROM t LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    )


def test_the_migrations_differ_only_in_type_names():
    for lite, pg in zip(migrations(SQLITE), migrations(POSTGRES), strict=True):
        assert (
            lite.replace(" REAL", " DOUBLE PRECISION").replace(
                "lease_token INTEGER", "lease_token BIGINT"
            )
            == pg
        )
