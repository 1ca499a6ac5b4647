"""One route as configured: a provider key in the environment or a `[[routes]]` table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
)

from imagehub.routing.capabilities import Honours
from imagehub.settings import secret_from_environment

ProviderKind = Literal["gemini", "vertex", "openai", "openrouter", "openai_compatible", "fal"]


class RoutesConfigError(ValueError):
    """The routes configuration is wrong; the message names the route and the mistake."""


class SupportsEntry(BaseModel):
    """`[routes.supports]`: what the route honours, where it differs from its provider's table.

    For instance an OpenAI-compatible relay that takes `"512"` for 0.5K:
    `resolutions = ["0.5K", "1K", "2K", "4K"]`. Unset keys keep the table's value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    resolutions: list[Literal["0.5K", "1K", "2K", "4K"]] | None = None
    aspect_ratios: list[Annotated[str, StringConstraints(pattern=r"^[0-9]+:[0-9]+$")]] | None = None
    max_input_images: int | None = Field(None, ge=1)
    mask: bool | None = None
    web_search: bool | None = None
    thinking: bool | None = None
    system_prompt: bool | None = None
    seed: bool | None = None
    safety_tolerance: bool | None = None
    #: only `false` (an OpenAI look-alike that does not stream): no other adapter can stream
    partial_images: Literal[False] | None = None

    def applied_to(self, honours: Honours) -> Honours:
        return honours.with_changes(self.model_dump(exclude_none=True))


class RouteEntry(BaseModel):
    """One route of the routes file (`[[routes]]`), or of a provider key in the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: what tasks report in `provider`; default: the provider kind
    name: str | None = None
    provider: ProviderKind
    #: the credential itself, or the name of the environment variable that holds it
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    base_url: str | None = None
    #: catalog model ids this route serves; default: every model the provider can serve
    models: list[str] | None = None
    #: one upstream model id for every model of the route, or one per model id
    upstream_model: str | None = None
    upstream_models: dict[str, str] = Field(default_factory=dict)
    priority: int = 1
    weight: float = Field(1.0, gt=0)
    max_concurrency: int | None = Field(None, ge=1)
    timeout_seconds: float | None = Field(None, gt=0)
    #: extra request headers (openai_compatible, openrouter), e.g. HTTP-Referer
    headers: dict[str, str] = Field(default_factory=dict)
    #: vertex: the Google Cloud project, location and (optional) service-account file
    project: str | None = None
    location: str = "global"
    credentials_file: Path | None = None
    #: fal: the longest pause between two status polls
    poll_seconds: float = Field(1.0, gt=0)
    #: what the route honours, where it differs from the provider's capability table
    supports: SupportsEntry = Field(default_factory=SupportsEntry)

    @field_validator("name")
    @classmethod
    def _not_demo(cls, value: Any) -> Any:
        if value == "demo":  # tasks and /hub/v1/models read "demo" as the offline placeholder
            raise ValueError("'demo' is the offline placeholder's name; choose another")
        return value

    @property
    def label(self) -> str:
        return self.name or self.provider

    def credential(self) -> SecretStr | None:
        """The route's key: `api_key`, else the variable `api_key_env` names."""
        if self.api_key is not None:
            return self.api_key
        if self.api_key_env is None:
            return None
        key = secret_from_environment(self.api_key_env)
        if key is None:
            raise RoutesConfigError(
                f"route {self.label}: the environment variable {self.api_key_env} (api_key_env) "
                "is not set"
            )
        return key
