"""API keys: 256 random bits behind a visible prefix; only a SHA-256 hash is stored."""

from __future__ import annotations

import hashlib
import secrets

from imagehub.tasks import new_id
from imagehub.tenancy.types import ApiKey

PREFIX = "ih_"
#: the tenant the bootstrap admin key belongs to
DEFAULT_TENANT = "default"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def make_key(
    tenant_id: str = DEFAULT_TENANT, *, name: str = "", admin: bool = False, key: str | None = None
) -> tuple[str, ApiKey]:
    """A new key (or a record for a given one): the plaintext, shown once, and what is stored."""
    plaintext = key or PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        id=new_id("key_"),
        tenant_id=tenant_id,
        key_hash=hash_key(plaintext),
        prefix=plaintext[:10],
        name=name,
        admin=admin,
    )
    return plaintext, record
