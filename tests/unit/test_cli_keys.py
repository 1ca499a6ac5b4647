"""`imagehub keys`: create, list, change limits and revoke keys straight in the store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from imagehub.cli import main
from imagehub.errors import Unauthorized
from imagehub.settings import Settings
from imagehub.wiring import build_hub


@pytest.fixture(autouse=True)
def database(tmp_path: Path) -> Path:
    """The hub's database in tmp_path, as a first `imagehub serve` (or `migrate`) leaves it."""
    assert main(["migrate", "--data-dir", str(tmp_path)]) == 0
    return tmp_path / "imagehub.db"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def listed(capsys: pytest.CaptureFixture[str], data: Path) -> list[dict]:
    code, out, _ = run(capsys, "keys", "list", "--json", "--data-dir", str(data))
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


async def authenticate(data: Path, key: str) -> str:
    hub = build_hub(Settings(data_dir=data, key_cache_seconds=0), run_worker=False)
    await hub.store.open()
    try:
        return (await hub.authenticate(key)).tenant_id
    finally:
        await hub.store.close()


def test_create_prints_the_key_once_and_the_hub_accepts_it(capsys, tmp_path):
    data = str(tmp_path)
    code, out, err = run(
        capsys,
        "keys",
        "create",
        "--tenant",
        "acme",
        "--name",
        "ci",
        "--rpm",
        "60",
        "--budget",
        "2.5",
        "--data-dir",
        data,
    )
    key = out.strip()
    assert code == 0 and key.startswith("ih_") and len(key) >= 46
    assert "shown only this once" in err
    assert asyncio.run(authenticate(tmp_path, key)) == "acme"
    [row] = listed(capsys, tmp_path)
    assert (row["tenant_id"], row["name"], row["requests_per_minute"], row["budget_usd"]) == (
        "acme",
        "ci",
        60,
        2.5,
    )
    assert key not in json.dumps(row) and row["prefix"] == key[:10]


def test_limits_change_only_what_is_given_and_none_removes_one(capsys, tmp_path):
    run(capsys, "keys", "create", "--tenant", "acme", "--rpm", "60", "--data-dir", str(tmp_path))
    [row] = listed(capsys, tmp_path)
    code, out, _ = run(
        capsys,
        "keys",
        "limits",
        row["id"],
        "--rpm",
        "none",
        "--concurrency",
        "3",
        "--data-dir",
        str(tmp_path),
    )
    assert code == 0 and "concurrency 3" in out
    [row] = listed(capsys, tmp_path)
    assert (row["requests_per_minute"], row["concurrent_tasks"]) == (None, 3)


def test_revoke_refuses_the_key_from_then_on(capsys, tmp_path):
    _, out, _ = run(capsys, "keys", "create", "--tenant", "acme", "--data-dir", str(tmp_path))
    key = out.strip()
    [row] = listed(capsys, tmp_path)
    code, out, _ = run(capsys, "keys", "revoke", row["id"], "--data-dir", str(tmp_path))
    assert code == 0 and "revoked" in out
    with pytest.raises(Unauthorized):
        asyncio.run(authenticate(tmp_path, key))
    assert listed(capsys, tmp_path)[0]["revoked_at"] is not None


def test_errors_have_exit_codes(capsys, tmp_path):
    code, _, err = run(capsys, "keys", "revoke", "key_missing", "--data-dir", str(tmp_path))
    assert code == 4 and "no key" in err
    code, _, err = run(
        capsys, "keys", "create", "--tenant", "Bad Name", "--data-dir", str(tmp_path)
    )
    assert code == 2 and "tenant_id" not in err and "a-z" in err
    with pytest.raises(SystemExit):
        run(capsys, "keys", "create", "--tenant", "x", "--rpm", "0")
    assert run(capsys, "keys")[0] == 2


@pytest.mark.parametrize("command", [["list"], ["create", "--tenant", "acme"], ["revoke", "k"]])
def test_no_database_where_it_looks_is_an_error_that_creates_nothing(
    capsys, tmp_path, monkeypatch, command
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no --data-dir: ./imagehub-data, which is not there
    code, out, err = run(capsys, "keys", *command)
    assert code == 2 and out == ""
    assert str(elsewhere / "imagehub-data" / "imagehub.db") in err
    assert "--data-dir" in err and "IMAGEHUB_DATA_DIR" in err
    assert list(elsewhere.iterdir()) == []
    code, _, err = run(capsys, "keys", "list", "--data-dir", str(elsewhere / "nothing"))
    assert code == 2 and "no database at" in err and list(elsewhere.iterdir()) == []


def test_revoke_refuses_the_last_active_admin_key(capsys, tmp_path):
    data = str(tmp_path)
    run(capsys, "keys", "create", "--tenant", "ops", "--admin", "--data-dir", data)
    [admin] = listed(capsys, tmp_path)
    code, _, err = run(capsys, "keys", "revoke", admin["id"], "--data-dir", data)
    assert code == 2 and "last active admin key" in err
    assert listed(capsys, tmp_path)[0]["revoked_at"] is None
    run(capsys, "keys", "create", "--tenant", "ops", "--admin", "--data-dir", data)
    code, _, _ = run(capsys, "keys", "revoke", admin["id"], "--data-dir", data)
    assert code == 0


def test_a_start_restores_the_configured_admin_key_if_it_was_revoked(capsys, tmp_path):
    from pydantic import SecretStr

    async def start() -> None:
        settings = Settings(data_dir=tmp_path, admin_key=SecretStr("ih_configured_admin"))
        hub = build_hub(settings, run_worker=False)
        await hub.store.open()
        try:
            await hub.ensure_admin_key()
        finally:
            await hub.store.close()

    asyncio.run(start())
    run(capsys, "keys", "create", "--tenant", "ops", "--admin", "--data-dir", str(tmp_path))
    configured = listed(capsys, tmp_path)[0]
    code, _, _ = run(capsys, "keys", "revoke", configured["id"], "--data-dir", str(tmp_path))
    assert code == 0
    with pytest.raises(Unauthorized):
        asyncio.run(authenticate(tmp_path, "ih_configured_admin"))
    asyncio.run(start())
    assert asyncio.run(authenticate(tmp_path, "ih_configured_admin")) == "default"
    assert listed(capsys, tmp_path)[0]["admin"] is True
