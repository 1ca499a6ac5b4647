"""One tree of errors, mapped to HTTP at the API border and back to exceptions in the SDK.

    HubError
    ├── ClientError                   the request is wrong; 4xx
    │   ├── InvalidJSON               400 invalid_json
    │   ├── Unauthorized              401 unauthorized
    │   ├── Forbidden                 403 forbidden (an admin route, a key that is not admin)
    │   ├── NotFound                  404 not_found
    │   ├── AlreadyFinished           409 already_finished
    │   ├── LastAdminKey              409 last_admin_key (revoking the only active admin key)
    │   ├── PayloadTooLarge           413 payload_too_large
    │   ├── InvalidInput              422 invalid_input (carries every failing field)
    │   │   └── IdempotencyKeyReused  422 idempotency_key_reused
    │   └── RateLimited               429 rate_limited (carries retry_after)
    ├── Overloaded                    503 overloaded (carries retry_after)
    │   └── StorageUnavailable        503 overloaded: a transient storage fault (disk full, ...)
    ├── ModelUnavailable              503 model_unavailable (no configured route serves the model)
    ├── TaskError                     why a task failed; lands in task.error (TaskFailure)
    │   ├── InputImageError
    │   │   ├── ImageDownloadError    image_download_error
    │   │   └── InvalidInputImage     invalid_input_image
    │   ├── ContentPolicyViolation    content_policy_violation
    │   ├── NoImageGenerated          no_image_generated
    │   ├── UpstreamError             upstream_error
    │   │   ├── UpstreamRateLimited   upstream_rate_limited (retryable)
    │   │   ├── UpstreamUnavailable   upstream_unavailable (retryable)
    │   │   ├── UpstreamTimeout       upstream_timeout (retryable)
    │   │   └── UpstreamConfigError   upstream_error: the route's credentials, model id or account
    │   ├── Canceled                  canceled
    │   └── InternalError             internal_error
    │       └── StorageFault          internal_error (retryable, not counted): disk full, ...
    ├── InvalidTransition             a bug: a task state change the state machine forbids
    ├── HubUnreachable                SDK: no answer from the hub (refused, reset, timed out)
    ├── TaskFailed                    SDK: the task ended failed or canceled (carries the task)
    └── WaitTimeout                   SDK: the task was not ready in time; also a TimeoutError

Each class's docstring is its default message. This module imports nothing of the project at
run time. `HTTP_ERRORS` maps an error envelope's code back to its class, for the SDK.
"""

from __future__ import annotations

import email.utils
import errno
import time
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from imagehub.schemas import TaskOut


class HubError(Exception):
    """Something went wrong."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (type(self).__doc__ or "").strip()
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """The error envelope of API.md."""
        return {"error": {"code": self.code, "message": self.message}}


class ClientError(HubError):
    """The request is not valid."""

    code = "bad_request"
    status = 400


class InvalidJSON(ClientError):
    """The request body is not valid JSON."""

    code = "invalid_json"
    status = 400


class Unauthorized(ClientError):
    """A valid API key is required: send 'Authorization: Bearer <key>'."""

    code = "unauthorized"
    status = 401


class Forbidden(ClientError):
    """This route needs an admin key."""

    code = "forbidden"
    status = 403


class NotFound(ClientError):
    """Not found."""

    code = "not_found"
    status = 404


class AlreadyFinished(ClientError):
    """The task is already finished."""

    code = "already_finished"
    status = 409


class LastAdminKey(ClientError):
    """This is the last active admin key: make another admin key before revoking it."""

    code = "last_admin_key"
    status = 409


class NotRetryable(ClientError):
    """This delivery cannot be retried now: it succeeded, its task is not finished, or it is
    being sent at this moment."""

    code = "not_retryable"
    status = 409


class PayloadTooLarge(ClientError):
    """The request body is too large."""

    code = "payload_too_large"
    status = 413


#: failing fields an answer lists at most
MAX_DETAILS = 50


class InvalidInput(ClientError):
    """The input is invalid."""

    code = "invalid_input"
    status = 422

    def __init__(self, details: list[dict[str, Any]], message: str | None = None) -> None:
        # the answer lists the first MAX_DETAILS; the message counts them all
        self.details = details[:MAX_DETAILS]
        n = len(details)
        if message is None:
            message = f"{n} field{'s are' if n != 1 else ' is'} invalid"
            if n > MAX_DETAILS:
                message += f"; the first {MAX_DETAILS} are listed"
        super().__init__(message)

    @classmethod
    def one(cls, loc: list[str | int], msg: str, type_: str) -> InvalidInput:
        """One failing field; the message is the field's own."""
        return cls([{"loc": loc, "msg": msg, "type": type_}], message=msg)

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["details"] = self.details
        return body


class IdempotencyKeyReused(InvalidInput):
    """This Idempotency-Key was already used with a different request body."""

    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__([], message=(type(self).__doc__ or "").strip())


class RateLimited(ClientError):
    """Too many requests."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str | None = None, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class Overloaded(HubError):
    """The hub is overloaded; try again shortly."""

    code = "overloaded"
    status = 503

    def __init__(self, message: str | None = None, retry_after: float = 5.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class StorageUnavailable(Overloaded):
    """The hub cannot write its storage right now (disk full or out of file descriptors);
    try again shortly."""


class ModelUnavailable(HubError):
    """No configured route serves this model on this hub."""

    code = "model_unavailable"
    status = 503


class TaskError(HubError):
    """The task failed."""

    retryable: ClassVar[bool] = False
    #: the error a task kept when the hub stopped trying: retrying is over, whatever its kind
    final: bool = False
    #: the route whose call failed, when one did (a failed task keeps it as its provider)
    route: str | None = None


class InputImageError(TaskError):
    """An input image could not be used."""

    code = "invalid_input_image"


class ImageDownloadError(InputImageError):
    """An input image could not be downloaded."""

    code = "image_download_error"


class InvalidInputImage(InputImageError):
    """An input image is not a supported, decodable image."""

    code = "invalid_input_image"


class ContentPolicyViolation(TaskError):
    """The request was blocked by the provider's content policy."""

    code = "content_policy_violation"


class NoImageGenerated(TaskError):
    """The model answered without an image."""

    code = "no_image_generated"


class UpstreamError(TaskError):
    """The upstream provider failed."""

    code = "upstream_error"


class UpstreamRateLimited(UpstreamError):
    """The upstream provider is rate limiting the hub."""

    code = "upstream_rate_limited"
    retryable = True

    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class UpstreamUnavailable(UpstreamError):
    """The upstream provider is unavailable."""

    code = "upstream_unavailable"
    retryable = True


class UpstreamTimeout(UpstreamError):
    """The upstream provider did not answer in time."""

    code = "upstream_timeout"
    retryable = True


class UpstreamConfigError(UpstreamError):
    """The upstream route is misconfigured: its credentials, model id or account were refused."""

    code = "upstream_error"


class Canceled(TaskError):
    """The task was canceled."""

    code = "canceled"


class InternalError(TaskError):
    """The hub failed while running the task."""

    code = "internal_error"


class StorageFault(InternalError):
    """The hub could not write its storage (disk full or out of file descriptors)."""

    # the task goes back to the queue until the storage recovers; the fault is not the task's
    retryable = True


class InvalidTransition(HubError):
    """This task status change is not allowed."""

    code = "internal_error"
    status = 500


TASK_ERRORS: dict[str, type[TaskError]] = {
    cls.code: cls
    for cls in (
        ContentPolicyViolation,
        NoImageGenerated,
        ImageDownloadError,
        InvalidInputImage,
        UpstreamRateLimited,
        UpstreamUnavailable,
        UpstreamTimeout,
        UpstreamError,
        Canceled,
        InternalError,
    )
}


# -- raised by the SDK (imagehub.client), never sent over HTTP


class HubUnreachable(HubError):
    """The hub could not be reached, or the connection broke before it answered."""

    code = "unreachable"
    status = 503


class TaskFailed(HubError):
    """The task ended without images."""

    code = "task_failed"

    def __init__(self, task: TaskOut) -> None:
        self.task = task
        #: the task's own error code (`content_policy_violation`, `canceled`, ...)
        self.error_code = task.error.code if task.error else task.status
        why = task.error.message if task.error else f"the task is {task.status}"
        super().__init__(f"task {task.task_id} {task.status}: {why} ({self.error_code})")


class WaitTimeout(HubError, TimeoutError):
    """The task was not ready in time."""

    code = "wait_timeout"

    def __init__(self, task: TaskOut) -> None:
        self.task = task
        super().__init__(f"task {task.task_id} is still {task.status}")


#: error envelope codes the HTTP layer sends, back to their classes
HTTP_ERRORS: dict[str, type[HubError]] = {
    cls.code: cls
    for cls in (
        InvalidJSON,
        Unauthorized,
        Forbidden,
        NotFound,
        AlreadyFinished,
        LastAdminKey,
        PayloadTooLarge,
        InvalidInput,
        IdempotencyKeyReused,
        RateLimited,
        Overloaded,
        ModelUnavailable,
    )
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds a `Retry-After` value asks for (delta seconds or an HTTP date); None if unusable.

    One reading for the SDK, the upstream providers and the webhook sender alike.
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


#: what a full disk, an exhausted quota or descriptor table look like to the OS
_TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE})
#: SQLite's primary result codes for the same conditions: SQLITE_IOERR (10, writing its
#: journal), SQLITE_FULL (13), SQLITE_CANTOPEN (14, no descriptor left). By number, so the SDK,
#: which imports this module, needs no sqlite3.
_TRANSIENT_SQLITE = frozenset({10, 13, 14})


def is_storage_fault(exc: BaseException) -> bool:
    """Whether `exc` is a storage condition that passes by itself: retry later, don't fail."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # the cause may be the OS error
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _TRANSIENT_ERRNOS:
            return True
        code = getattr(current, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _TRANSIENT_SQLITE:
            return True
        current = current.__cause__ or current.__context__
    return False
