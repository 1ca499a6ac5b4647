"""Wire schemas of tasks, files and errors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TaskStatusName = Literal["queued", "running", "succeeded", "failed", "canceled"]


class _Wire(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    """An answer: the SDK ignores fields a newer hub may add."""

    model_config = ConfigDict(extra="ignore")


class TaskCreate(_Wire):
    """The body of POST /hub/v1/tasks."""

    model: str = Field(min_length=1, description="A model id from GET /hub/v1/models.")
    input: dict[str, Any] = Field(description="The model's parameters.")
    webhook_url: str | None = Field(None, description="Called with the task when it is ready.")
    metadata: dict[str, Any] | None = Field(
        None, description="Anything the client wants back, at most 4 KiB as JSON."
    )
    partial_images: int = Field(
        0,
        ge=0,
        le=3,
        strict=True,
        description="Partial images to stream while the image is drawn (0 to 3; gpt-image-2 on "
        "OpenAI routes only): each is stored and announced as a `partial_image` event on "
        "/events. A route that cannot stream them refuses the submit (422).",
    )


class ImageOut(_Out):
    url: str
    content_type: str
    file_name: str
    file_size: int
    width: int
    height: int


class PartialImageOut(_Out):
    """A partial image the upstream streamed while drawing (`partial_images`)."""

    index: int = Field(description="Its place among the attempt's partial images, from 0.")
    url: str
    content_type: str
    width: int
    height: int


class SourceOut(_Out):
    uri: str
    title: str = ""


class GroundingOut(_Out):
    """What the web search behind an answer found (`enable_web_search`, Gemini routes)."""

    queries: list[str] = Field(default_factory=list, description="The searches the model ran.")
    search_entry_point: str = Field(
        "",
        description="Google's search suggestions as HTML; Google's terms require showing it "
        "with the grounded answer.",
    )
    sources: list[SourceOut] = Field(default_factory=list, description="Pages the answer used.")


class TaskOutputOut(_Out):
    images: list[ImageOut]
    description: str = ""
    output_purged: bool = False
    grounding: GroundingOut | None = None


class TaskErrorOut(_Out):
    code: str
    message: str
    retryable: bool = False


class UsageOut(_Out):
    cost_usd: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    basis: Literal["tokens", "per_image"] | None = Field(
        None,
        description="What cost_usd was computed from: the upstream's reported tokens at its "
        "rates, or each image made at the route's price per image.",
    )


class TaskOut(_Out):
    """A task as the API returns it."""

    task_id: str
    model: str
    status: TaskStatusName
    ready: bool
    input: dict[str, Any]
    output: TaskOutputOut | None
    error: TaskErrorOut | None
    provider: str | None
    warnings: list[str]
    attempts: int
    usage: UsageOut | None = None
    metadata: dict[str, Any] | None
    partial_images: int = Field(0, description="The partial images asked for at submit.")
    partials: list[PartialImageOut] = Field(
        default_factory=list,
        description="The partial images stored so far by the running (or the succeeded) attempt.",
    )
    created_at: str
    started_at: str | None
    finished_at: str | None
    queue_position: int | None = Field(
        None,
        description="While queued: how many tasks will be claimed before this one (the queue "
        "is fair across tenants). Only on a single task (GET, submit, events), not in lists.",
    )
    eta_seconds: float | None = Field(
        None,
        description="While queued or running: the estimated seconds until ready, from the "
        "recent attempts of this model; null when there is nothing to estimate from.",
    )
    progress: float | None = Field(
        None,
        description="While running: an estimate from 0 to 1 of how far along the task is "
        "(below 1: a task is done when `ready`); 0 while queued; null once ready.",
    )


class TaskProgressOut(_Out):
    """The `progress` event of a task's event stream."""

    task_id: str
    status: TaskStatusName
    queue_position: int | None
    eta_seconds: float | None
    progress: float | None
    elapsed_seconds: float = Field(description="Seconds since the task was submitted.")


class TaskList(_Out):
    data: list[TaskOut]
    next_cursor: str | None


class FileOut(_Out):
    file_id: str
    url: str


class ErrorDetail(_Out):
    loc: list[str | int]
    msg: str
    type: str


class ErrorInfo(_Out):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorBody(_Out):
    """Every non-2xx answer."""

    error: ErrorInfo
