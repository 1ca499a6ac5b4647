"""Tenants and their keys: authentication, key management, request rates, webhook secrets.

Used by the API (admin routes, every authenticated request) and by `imagehub keys` alike.
A process trusts a key it looked up for `IMAGEHUB_KEY_CACHE_SECONDS` at most, so a revoked
key or a changed limit takes effect everywhere within that time (here at once).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
import secrets
import time
from dataclasses import dataclass

from imagehub.errors import InvalidInput, LastAdminKey, NotFound, Unauthorized
from imagehub.settings import Settings
from imagehub.store import Store
from imagehub.tasks import utcnow
from imagehub.tenancy.keys import hash_key, make_key
from imagehub.tenancy.limits import Rates, StoreRates, too_many_requests
from imagehub.tenancy.streams import Streams
from imagehub.tenancy.types import ApiKey
from imagehub.webhooks.types import WebhookSecret

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
#: after a rotation, the previous webhook secret keeps signing for this long
SECRET_OVERLAP_SECONDS = 24 * 3600.0
_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's limits; None is no limit. The budget is in micro-USD."""

    rpm: int | None = None
    concurrency: int | None = None
    budget_micros: int | None = None


def new_webhook_secret(tenant_id: str) -> WebhookSecret:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    raw = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    return WebhookSecret(tenant_id, f"whsec_{raw}", utcnow())


class Accounts:
    def __init__(self, store: Store, settings: Settings, rates: Rates | None = None) -> None:
        self.store = store
        self.settings = settings
        self.rates = rates or StoreRates(store)
        #: event streams and long-polls each key holds open in this process
        self.streams = Streams(settings.max_streams_per_key)
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}
        #: one admin-key change at a time in this process (two admins revoking each other)
        self._admins = asyncio.Lock()

    async def aclose(self) -> None:
        await self.rates.aclose()

    # -- requests

    async def authenticate(self, key: str) -> ApiKey:
        """The key's record, or Unauthorized (unknown or revoked)."""
        digest = hash_key(key)
        now = time.monotonic()
        cached = self._keys.get(digest)
        if cached is None or now - cached[0] > self.settings.key_cache_seconds:
            cached = (now, await self.store.get_key(digest))
            if len(self._keys) > _CACHE_SIZE:
                self._keys.clear()
            self._keys[digest] = cached
        record = cached[1]
        if record is None or record.revoked_at is not None:
            raise Unauthorized()
        return record

    async def check_rate(self, key: ApiKey) -> None:
        """Count one request against the key's per-minute limit; RateLimited past it."""
        if key.rpm_limit is None:
            return
        wait = await self.rates.hit(key.id, key.rpm_limit)
        if wait > 0:
            raise too_many_requests(key, wait)

    # -- keys

    async def create_key(
        self, tenant_id: str, *, name: str = "", admin: bool = False, limits: Limits = Limits()
    ) -> tuple[str, ApiKey]:
        """A new key for a tenant (the tenant exists once it has a key): plaintext and record."""
        if not TENANT_ID.match(tenant_id):
            raise InvalidInput.one(
                ["tenant_id"],
                "must be 1 to 64 of a-z, 0-9, '_', '.' and '-', starting with a letter or digit",
                "pattern",
            )
        plaintext, record = make_key(tenant_id, name=name, admin=admin)
        record = _with_limits(record, limits)
        await self.store.add_key(record)
        return plaintext, record

    async def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        """Every key, or a tenant's, revoked ones included, oldest first."""
        return await self.store.list_keys(tenant_id)

    async def key(self, key_id: str) -> ApiKey:
        found = await self.store.get_key_by_id(key_id)
        if found is None:
            raise NotFound(f"no key {key_id!r}")
        return found

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key; LastAdminKey (409) for the last active admin key: the hub keeps one."""
        async with self._admins:
            key = await self.key(key_id)
            if key.admin and key.revoked_at is None and not await self._other_admin(key_id):
                raise LastAdminKey()
            revoked = await self.store.revoke_key(key_id)
        if revoked is None:
            raise NotFound(f"no key {key_id!r}")
        self._forget(revoked)
        return revoked

    async def _other_admin(self, key_id: str) -> bool:
        keys = await self.store.list_keys()
        return any(k.admin and k.revoked_at is None and k.id != key_id for k in keys)

    async def ensure_admin(self, plaintext: str) -> None:
        """The configured admin key, stored and active: added if new, restored if revoked.

        Whoever holds the machine's settings can always get back in (a revoke in another
        process may race past the last-admin check; a restart undoes it).
        """
        found = await self.store.get_key(hash_key(plaintext))
        if found is None:
            await self.store.add_key(make_key(name="admin", admin=True, key=plaintext)[1])
        elif found.revoked_at is not None or not found.admin:
            restored = await self.store.restore_key(found.id)
            if restored is not None:
                self._forget(restored)

    async def set_limits(self, key_id: str, limits: Limits) -> ApiKey:
        changed = await self.store.set_key_limits(
            key_id,
            rpm_limit=limits.rpm,
            concurrency_limit=limits.concurrency,
            budget_micros=limits.budget_micros,
        )
        if changed is None:
            raise NotFound(f"no key {key_id!r}")
        self._forget(changed)
        return changed

    def _forget(self, key: ApiKey) -> None:
        self._keys.pop(key.key_hash, None)

    # -- webhook secrets

    async def webhook_secrets(self, tenant_id: str) -> list[WebhookSecret]:
        """The tenant's signing secrets, newest first; the first call makes one."""
        found = await self.store.webhook_secrets(tenant_id)
        return found or await self.store.ensure_webhook_secret(new_webhook_secret(tenant_id))

    async def rotate_webhook_secret(self, tenant_id: str) -> list[WebhookSecret]:
        """A new secret; the old one keeps signing (next to it) for a day."""
        return await self.store.rotate_webhook_secret(
            new_webhook_secret(tenant_id), SECRET_OVERLAP_SECONDS
        )


def _with_limits(key: ApiKey, limits: Limits) -> ApiKey:
    return dataclasses.replace(
        key,
        rpm_limit=limits.rpm,
        concurrency_limit=limits.concurrency,
        budget_micros=limits.budget_micros,
    )
