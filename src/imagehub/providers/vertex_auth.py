"""OAuth access tokens for Vertex AI, from a service-account file or application default
credentials, through google-auth (the optional `vertex` extra: `pip install 'imagehub[vertex]'`).

google-auth refreshes synchronously over `requests`, so a refresh runs in a thread; the token
is reused until a minute before it expires.
"""

from __future__ import annotations

import asyncio
import importlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from imagehub.errors import UpstreamConfigError
from imagehub.flight import SingleFlight

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_EARLY = timedelta(seconds=60)


class GoogleTokens:
    """Bearer tokens for Vertex AI; raises UpstreamConfigError when none can be had."""

    def __init__(self, credentials_file: Path | None = None) -> None:
        self.credentials_file = credentials_file
        self._credentials: Any = None
        self._refreshing = SingleFlight(
            lambda: asyncio.to_thread(self._refresh), "refreshing the Vertex AI token"
        )

    async def token(self) -> str:
        if not self._fresh():
            await self._refreshing()
        return str(self._credentials.token)

    def _fresh(self) -> bool:
        creds = self._credentials
        if creds is None or not creds.token:
            return False
        expiry = creds.expiry
        if expiry is None:
            return True
        if expiry.tzinfo is None:  # google-auth keeps naive UTC datetimes
            expiry = expiry.replace(tzinfo=UTC)
        return bool(expiry - _EARLY > datetime.now(UTC))

    def _refresh(self) -> None:
        try:
            auth = importlib.import_module("google.auth")
            transport = importlib.import_module("google.auth.transport.requests")
        except ImportError:
            raise UpstreamConfigError(
                "Vertex AI routes need google-auth: pip install 'imagehub[vertex]'"
            ) from None
        try:
            if self._credentials is None:
                self._credentials = self._load(auth)
            self._credentials.refresh(transport.Request())
        except Exception as exc:  # google-auth raises its own tree; keep only the class name
            raise UpstreamConfigError(
                f"no Vertex AI access token could be obtained ({type(exc).__name__}); check the "
                "route's credentials_file or the application default credentials"
            ) from None

    def _load(self, auth: Any) -> Any:
        if self.credentials_file is not None:
            accounts = importlib.import_module("google.oauth2.service_account")
            return accounts.Credentials.from_service_account_file(
                str(self.credentials_file), scopes=[SCOPE]
            )
        credentials, _project = auth.default(scopes=[SCOPE])
        return credentials
