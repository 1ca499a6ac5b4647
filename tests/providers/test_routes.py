"""Routes from the settings: provider keys, the routes file, the demo fallback, the CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from imagehub import cli
from imagehub.catalog import Catalog
from imagehub.routing.config import RoutesConfigError, build_router
from imagehub.settings import Settings
from tests.providers.fake_upstream import FakeUpstream, Reply

CATALOG = Catalog.load()


def _routes(**settings) -> dict[str, list[tuple[str, str, int]]]:
    router = build_router(Settings(demo=False, **settings), CATALOG)
    return {
        model.id: [(r.name, r.upstream_model, r.priority) for r in router.routes(model)]
        for model in CATALOG
    }


def test_each_key_makes_its_provider_a_route_for_what_it_serves():
    keys = {
        name: SecretStr("k")
        for name in ("gemini_api_key", "openai_api_key", "openrouter_api_key", "fal_key")
    }
    routes = _routes(**keys)
    assert routes["nano-banana-2"] == [
        ("gemini", "gemini-3.1-flash-image", 1),
        ("openrouter", "google/gemini-3.1-flash-image", 2),
        ("fal", "fal-ai/nano-banana-2", 3),
    ]
    assert routes["nano-banana/edit"][0] == ("gemini", "gemini-2.5-flash-image", 1)
    assert routes["gpt-image-2/edit"] == [
        ("openai", "gpt-image-2", 1),
        ("fal", "openai/gpt-image-2/edit", 3),
    ]


def test_only_gemini_leaves_gpt_without_a_route():
    routes = _routes(gemini_api_key=SecretStr("k"))
    assert [r[0] for r in routes["nano-banana-pro/edit"]] == ["gemini"]
    assert routes["gpt-image-2"] == []


def test_demo_serves_models_without_a_route_only_when_allowed():
    model = CATALOG.get("gpt-image-2")
    with_demo = build_router(Settings(demo=True, gemini_api_key=SecretStr("k")), CATALOG)
    assert [r.name for r in with_demo.routes(model)] == ["demo"]
    assert [r.name for r in with_demo.routes(CATALOG.get("nano-banana"))] == ["gemini"]
    without = build_router(Settings(demo=False), CATALOG)
    assert without.routes(model) == []


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(text)
    return path


def test_routes_file_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_BACKUP_GEMINI_KEY", "from-the-environment")
    path = _file(
        tmp_path,
        """
[[routes]]
name = "gemini-preview"
provider = "gemini"
api_key_env = "MY_BACKUP_GEMINI_KEY"
models = ["nano-banana-2", "nano-banana-pro"]
upstream_model = "gemini-3.1-flash-image-preview"
priority = 5
weight = 2.5
max_concurrency = 8
timeout_seconds = 120

[routes.upstream_models]
"nano-banana-pro" = "gemini-3-pro-image-preview"
""",
    )
    router = build_router(Settings(demo=False, routes_file=path), CATALOG)
    (route,) = router.routes(CATALOG.get("nano-banana-2"))
    assert (route.name, route.upstream_model, route.priority, route.weight, route.timeout) == (
        "gemini-preview",
        "gemini-3.1-flash-image-preview",
        5,
        2.5,
        120,
    )
    assert route.limiter is not None and route.limiter.limit == 8
    (pro,) = router.routes(CATALOG.get("nano-banana-pro"))
    assert pro.upstream_model == "gemini-3-pro-image-preview"
    assert pro.limiter is route.limiter  # one limit for the whole configured route
    assert router.routes(CATALOG.get("nano-banana")) == []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[routes]]\nprovider = "gemini"\napi_key_env = "NOT_SET_ANYWHERE_123"\n', "is not set"),
        ('[[routes]]\nprovider = "gemini"\n', "needs api_key"),
        ('[[routes]]\nprovider = "gemini"\napi_key = "k"\nmodels = ["nope"]\n', "unknown models"),
        ('[[routes]]\nprovider = "carrier-pigeon"\n', "provider"),
        ('[[routes]]\nprovider = "fal"\napi_key = "k"\ncolour = "red"\n', "colour"),
        ('[[routes]]\nprovider = "vertex"\n', "needs `project`"),
        ('[[routes]]\nprovider = "openai_compatible"\n', "needs `base_url`"),
        ('[[route]]\nprovider = "fal"\n', "use [[routes]]"),
        (
            '[[routes]]\nprovider = "openai"\napi_key = "k"\nmodels = ["nano-banana"]\n',
            "no default upstream model",
        ),
        (
            '[[routes]]\nprovider = "fal"\napi_key = "k"\n[[routes]]\nprovider = "fal"\n'
            'api_key = "k"\n',
            "repeated: fal",
        ),
    ],
)
def test_routes_file_mistakes_fail_at_startup(tmp_path, text, words):
    path = _file(tmp_path, text)
    with pytest.raises(RoutesConfigError) as caught:
        build_router(Settings(demo=False, routes_file=path), CATALOG)
    assert words in str(caught.value)


def test_cli_lists_routes_without_secrets(monkeypatch, capsys):
    monkeypatch.setenv("IMAGEHUB_OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("IMAGEHUB_DEMO", "true")
    assert cli.main(["routes"]) == 0
    out = capsys.readouterr().out
    assert "sk-very-secret" not in out
    lines = out.splitlines()
    assert lines[0].split() == [
        "model", "route", "provider", "upstream_model", "priority", "weight",
        "max_concurrency", "timeout", "base_url",
    ]  # fmt: skip
    gpt = next(line for line in lines if line.startswith("gpt-image-2 "))
    assert gpt.split() == [
        "gpt-image-2", "openai", "openai", "gpt-image-2", "1", "1", "-", "default",
        "https://api.openai.com/v1",
    ]  # fmt: skip
    assert any(line.split()[:2] == ["nano-banana", "demo"] for line in lines)


async def test_cli_check_live_calls_each_route_once(monkeypatch, capsys):
    # the live check against a loopback fake: it never reaches a real upstream in tests
    fake = await FakeUpstream(lambda seen: Reply(200, {"id": "gpt-image-2"})).start()
    monkeypatch.setenv("IMAGEHUB_OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("IMAGEHUB_OPENAI_BASE_URL", fake.url)
    try:
        code = await asyncio.to_thread(cli.main, ["routes", "--check-live"])
    finally:
        await fake.close()
    out = capsys.readouterr().out
    assert code == 0
    assert "ok     openai: gpt-image-2: ok" in out
    assert [s.path for s in fake.seen] == ["/models/gpt-image-2"]


def test_the_docs_routes_file_example_loads(tmp_path, monkeypatch):
    page = (Path(__file__).resolve().parents[2] / "docs" / "providers.md").read_text()
    example = page.split("```toml\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("BACKUP_GEMINI_KEY", "k1")
    monkeypatch.setenv("FAL_KEY", "k2")
    router = build_router(Settings(demo=False, routes_file=_file(tmp_path, example)), CATALOG)
    names = [r.name for r in router.routes(CATALOG.get("nano-banana-2/edit"))]
    assert sorted(names) == ["fal", "gemini-backup", "local", "vertex"]
    backup = next(r for r in router.routes(CATALOG.get("nano-banana-2/edit")) if r.priority == 2)
    assert backup.upstream_model == "gemini-3.1-flash-image-preview"
