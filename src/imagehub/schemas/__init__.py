"""Wire schemas shared by the API and the SDK, one module per resource. Depends on pydantic only."""

from __future__ import annotations

from imagehub.schemas.keys import (
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    KeyUsageOut,
    LimitsIn,
    LimitsOut,
)
from imagehub.schemas.models import (
    ModelList,
    ModelOut,
    ParameterOut,
)
from imagehub.schemas.tasks import (
    ErrorBody,
    ErrorDetail,
    ErrorInfo,
    FileOut,
    GroundingOut,
    ImageOut,
    PartialImageOut,
    SourceOut,
    TaskCreate,
    TaskErrorOut,
    TaskList,
    TaskOut,
    TaskOutputOut,
    TaskProgressOut,
    TaskStatusName,
    UsageOut,
)
from imagehub.schemas.webhooks import (
    AttemptOut,
    DeliveryList,
    DeliveryOut,
    SecretOut,
    WebhookSecretOut,
)

__all__ = [
    "AttemptOut",
    "DeliveryList",
    "DeliveryOut",
    "ErrorBody",
    "ErrorDetail",
    "ErrorInfo",
    "FileOut",
    "GroundingOut",
    "ImageOut",
    "KeyCreate",
    "KeyCreated",
    "KeyList",
    "KeyOut",
    "KeyUsageOut",
    "LimitsIn",
    "LimitsOut",
    "ModelList",
    "ModelOut",
    "ParameterOut",
    "PartialImageOut",
    "SecretOut",
    "SourceOut",
    "TaskCreate",
    "TaskErrorOut",
    "TaskList",
    "TaskOut",
    "TaskOutputOut",
    "TaskProgressOut",
    "TaskStatusName",
    "UsageOut",
    "WebhookSecretOut",
]
