"""Domain objects to wire schemas."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from imagehub.catalog import ModelSpec, Validator
from imagehub.estimates import Estimate, Progress
from imagehub.schemas import (
    GroundingOut,
    ImageOut,
    ModelOut,
    ParameterOut,
    PartialImageOut,
    SourceOut,
    TaskErrorOut,
    TaskOut,
    TaskOutputOut,
    TaskProgressOut,
    UsageOut,
)
from imagehub.schemas.models import RoutePriceOut
from imagehub.tasks import Grounding, OutputImage, PartialImage, Task


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_url(base_url: str, file_id: str) -> str:
    return f"{base_url}/hub/v1/files/{file_id}"


def _image(image: OutputImage, base_url: str) -> ImageOut:
    url = image.data_uri or file_url(base_url, image.file_id or "")
    return ImageOut(
        url=url,
        content_type=image.content_type,
        file_name=image.file_name,
        file_size=image.file_size,
        width=image.width,
        height=image.height,
    )


def partial_out(partial: PartialImage, base_url: str) -> PartialImageOut:
    return PartialImageOut(
        index=partial.index,
        url=file_url(base_url, partial.file_id),
        content_type=partial.content_type,
        width=partial.width,
        height=partial.height,
    )


def _grounding(grounding: Grounding | None) -> GroundingOut | None:
    if grounding is None:
        return None
    return GroundingOut(
        queries=list(grounding.queries),
        search_entry_point=grounding.search_entry_point,
        sources=[SourceOut(uri=s.uri, title=s.title) for s in grounding.sources],
    )


def task_out(task: Task, base_url: str, estimate: Estimate | None = None) -> TaskOut:
    output = None
    if task.output is not None:
        output = TaskOutputOut(
            images=[_image(i, base_url) for i in task.output.images],
            description=task.output.description,
            output_purged=task.output.purged,
            grounding=_grounding(task.output.grounding),
        )
    return TaskOut(
        task_id=task.id,
        model=task.model,
        status=task.status.value,
        ready=task.ready,
        input=task.input,
        output=output,
        error=TaskErrorOut(**task.error.to_dict()) if task.error and task.ready else None,
        provider=task.provider,
        warnings=list(task.warnings),
        attempts=task.attempts,
        usage=UsageOut(**task.usage.to_dict()) if task.usage else None,
        metadata=task.metadata,
        partial_images=task.partial_images,
        partials=[partial_out(p, base_url) for p in task.partials],
        created_at=rfc3339(task.created_at) or "",
        started_at=rfc3339(task.started_at),
        finished_at=rfc3339(task.finished_at),
        queue_position=estimate.queue_position if estimate else None,
        eta_seconds=estimate.eta_seconds if estimate else None,
        progress=estimate.progress if estimate else None,
    )


def progress_out(progress: Progress) -> TaskProgressOut:
    estimate = progress.estimate
    return TaskProgressOut(
        task_id=progress.task.id,
        status=progress.task.status.value,
        queue_position=estimate.queue_position,
        eta_seconds=estimate.eta_seconds,
        progress=estimate.progress,
        elapsed_seconds=progress.elapsed_seconds,
    )


def model_out(
    spec: ModelSpec,
    validator: Validator,
    providers: Sequence[str] = (),
    price: Sequence[RoutePriceOut] = (),
) -> ModelOut:
    """A model as the API shows it; `providers`: the names of the routes that serve it, and
    `price` what an image costs on each."""
    return ModelOut(
        id=spec.id,
        name=spec.name,
        vendor=spec.vendor,
        capability=spec.capability,
        description=spec.description,
        parameters=[
            ParameterOut(
                name=p.name,
                type=p.display_type,
                required=p.required,
                default=p.default,
                values=list(p.values) if p.values else None,
                minimum=p.minimum if p.minimum is not None else p.min_items,
                maximum=p.maximum if p.maximum is not None else p.max_items,
                description=p.description,
            )
            for p in spec.params
        ],
        input_schema=validator.json_schema(spec.id),
        example={"model": spec.id, "input": spec.example},
        available=bool(providers),
        providers=list(providers),
        price=list(price),
    )
