"""The client commands: each takes the parsed arguments and a `Client`, and returns an exit code."""

from __future__ import annotations

import argparse
import itertools
import shlex
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Any

from imagehub.cli.display import (
    ProgressBar,
    error,
    model_header,
    print_json,
    prompt_of,
    table,
)
from imagehub.cli.params import UsageError, parse_params, range_text, show
from imagehub.client import Client, wire
from imagehub.errors import (
    ClientError,
    HubError,
    HubUnreachable,
    InvalidInput,
    NotFound,
    RateLimited,
    TaskFailed,
    Unauthorized,
    WaitTimeout,
)
from imagehub.schemas import ModelOut, TaskOut

_URL_PREFIXES = ("http://", "https://", "data:")


class Exit(IntEnum):
    """Exit codes scripts can rely on (docs/cli.md, "Exit codes")."""

    OK = 0
    TASK_FAILED = 1
    USAGE = 2
    UNAUTHORIZED = 3
    NOT_FOUND = 4
    UNAVAILABLE = 5
    RATE_LIMITED = 6
    TIMEOUT = 7
    INTERRUPTED = 130
    #: the reader of stdout went away (`| head`): stopped quietly, as SIGPIPE would stop it
    PIPE_CLOSED = 141


Handler = Callable[[argparse.Namespace, Client], int]

#: the first class that matches decides the exit code
_EXITS: list[tuple[type[HubError], Exit]] = [
    (TaskFailed, Exit.TASK_FAILED),
    (WaitTimeout, Exit.TIMEOUT),
    (Unauthorized, Exit.UNAUTHORIZED),
    (NotFound, Exit.NOT_FOUND),
    (RateLimited, Exit.RATE_LIMITED),
    (ClientError, Exit.USAGE),
    (HubError, Exit.UNAVAILABLE),
]


def runner(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """`handler` with a client from the arguments, and every error turned into its exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            with Client(getattr(args, "url", None), getattr(args, "api_key", None)) as client:
                return handler(args, client)
        except UsageError as exc:
            error(str(exc))
            return Exit.USAGE
        except HubError as exc:
            return report(exc, args)
        except KeyboardInterrupt:
            error("interrupted")
            return Exit.INTERRUPTED

    return run


def report(exc: HubError, args: argparse.Namespace) -> int:
    """Print what went wrong and what to do about it; the exit code."""
    error(exc.message)
    if isinstance(exc, InvalidInput):
        for detail in exc.details:
            where = ".".join(str(part) for part in detail["loc"])
            error(f"  {where}: {detail['msg']}")
    elif isinstance(exc, Unauthorized):
        error("  set IMAGEHUB_API_KEY (or pass --api-key) to a key of this hub")
    elif isinstance(exc, RateLimited):
        error(f"  try again in {exc.retry_after:g} s")
    elif isinstance(exc, WaitTimeout):
        error(f"  it keeps running: 'imagehub tasks wait {exc.task.task_id}' waits again")
    elif isinstance(exc, HubUnreachable):
        error("  is the hub running there? set IMAGEHUB_URL or pass --url")
    return next(code for cls, code in _EXITS if isinstance(exc, cls))


# -- generate and edit


def generate(args: argparse.Namespace, client: Client) -> int:
    model = _model(client, args.model, "text-to-image")
    params = {"prompt": args.prompt, **parse_params(args.param, model)}
    return _run(args, client, model.id, params)


def edit(args: argparse.Namespace, client: Client) -> int:
    model = _model(client, args.model, "image-to-image")
    params: dict[str, Any] = {"prompt": args.prompt, **parse_params(args.param, model)}
    params["image_urls"] = [_image_ref(client, ref, "--image") for ref in args.image]
    if args.mask is not None:
        if not any(p.name == "mask_url" for p in model.parameters):
            raise UsageError(f"--mask: {model.id} takes no mask")
        params["mask_url"] = _image_ref(client, args.mask, "--mask")
    return _run(args, client, model.id, params)


def _model(client: Client, model_id: str, capability: str) -> ModelOut:
    """The hub's entry for `model_id`; an edit command accepts a family id (`x` for `x/edit`)."""
    try:
        model = client.model(model_id)
        if model.capability != capability and capability == "image-to-image":
            model = client.model(f"{model_id}/edit")
    except NotFound:
        known = " ".join(m.id for m in client.models() if m.capability == capability)
        raise UsageError(f"unknown {capability} model {model_id!r}; one of: {known}") from None
    if model.capability != capability:
        raise UsageError(f"{model.id} edits images: use 'imagehub edit -m {model.id} --image'")
    return model


def _image_ref(client: Client, ref: str, option: str) -> str:
    """URLs as they are; a local file uploaded to the hub, as its file URL."""
    if ref.startswith(_URL_PREFIXES):
        return ref
    path = Path(ref)
    if not path.is_file():
        raise UsageError(f"{option} {ref}: no such file (or give an http(s) URL)")
    return client.upload(path).url


def _run(args: argparse.Namespace, client: Client, model_id: str, params: dict[str, Any]) -> int:
    task = client.submit(model_id, **params)
    if args.no_wait:
        if args.json:
            print_json(task)
        else:
            print(task.task_id)
        return Exit.OK
    return _finish(client, _wait(client, task, args.timeout, args.json), args.json, args.output)


def _wait(client: Client, task: TaskOut, timeout: float | None, as_json: bool) -> TaskOut:
    """Long-poll until ready, with the progress bar on a terminal."""
    bar = ProgressBar(quiet=as_json)
    try:
        with bar:
            bar.show(task)  # before the first poll: the bar never shows empty
            if not task.ready:
                task = client.wait(
                    task.task_id, timeout, on_progress=bar.show if bar.live else None
                )
    except KeyboardInterrupt:
        error(f"{task.task_id} keeps running; 'imagehub tasks cancel {task.task_id}' stops it")
        raise
    return task


def _finish(client: Client, task: TaskOut, as_json: bool, output: Path | None) -> int:
    """Save the images of a ready task and print their paths (or the task, as JSON)."""
    if task.status != "succeeded":
        if as_json:
            print_json(task)
        raise wire.failure(task)
    try:
        paths = client.save(task, output) if output is not None else []
    except ValueError as exc:  # sync_mode images already returned by an earlier read
        raise UsageError(str(exc)) from None
    if as_json or not paths:
        print_json(task)
    else:
        for path in paths:
            print(path)
    return Exit.OK


# -- tasks


def tasks_list(args: argparse.Namespace, client: Client) -> int:
    page_size = min(args.limit or 200, 200)
    found = client.list(model=args.model, status=args.status, page_size=page_size)
    chosen = itertools.islice(found, args.limit or None)
    if args.json:
        for task in chosen:
            print_json(task, indent=None)
        return Exit.OK
    rows = [
        [t.task_id, t.model, t.status, t.created_at[:19].replace("T", " "), prompt_of(t)]
        for t in chosen
    ]
    print(table(["TASK", "MODEL", "STATUS", "CREATED (UTC)", "PROMPT"], rows, wrap=(4,)))
    return Exit.OK


def tasks_get(args: argparse.Namespace, client: Client) -> int:
    print_json(client.get(args.task_id))
    return Exit.OK


def tasks_cancel(args: argparse.Namespace, client: Client) -> int:
    print_json(client.cancel(args.task_id))
    return Exit.OK


def tasks_wait(args: argparse.Namespace, client: Client) -> int:
    task = _wait(client, client.get(args.task_id), args.timeout, args.json)
    return _finish(client, task, args.json, args.output)


# -- models


def models(args: argparse.Namespace, client: Client) -> int:
    if args.model_id is not None:
        return _one_model(client.model(args.model_id), args.json)
    found = client.models()
    if args.json:
        print_json([m.model_dump(mode="json") for m in found])
        return Exit.OK
    rows = [[m.id, m.capability, m.name, m.description] for m in found]
    print(table(["MODEL", "CAPABILITY", "NAME", "DESCRIPTION"], rows, wrap=(3,)))
    return Exit.OK


def _one_model(model: ModelOut, as_json: bool) -> int:
    if as_json:
        print_json(model)
        return Exit.OK
    headers = ["PARAMETER", "TYPE", "REQUIRED", "DEFAULT", "VALUES / RANGE", "DESCRIPTION"]
    rows = [
        [p.name, p.type, "yes" if p.required else "", show(p.default), range_text(p), p.description]
        for p in model.parameters
    ]
    print(model_header(model))
    print()
    print(table(headers, rows, wrap=(4, 5)))
    print()
    print("example:")
    print(f"  {example_command(model)}")
    return Exit.OK


def example_command(model: ModelOut) -> str:
    """The catalog's example as one command line."""
    example: dict[str, Any] = dict(model.example.get("input", {}))
    words = ["imagehub", "generate" if model.capability == "text-to-image" else "edit"]
    words += ["-m", model.id]
    for image in example.pop("image_urls", []):
        words += ["--image", image]
    words.append(str(example.pop("prompt", "")))
    for name, value in example.items():
        words += ["--param", f"{name}={show(value)}"]
    return shlex.join(words)
