"""The client side of the `imagehub` command: generate, edit, tasks, models.

These commands use only the SDK (`imagehub.client`): they work from a plain `pip install`,
without the server's dependencies.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from imagehub.cli import commands
from imagehub.cli.commands import Exit
from imagehub.cli.params import catalog_help

__all__ = ["EXIT_CODES_HELP", "Exit", "add_commands"]

EXIT_CODES_HELP = """exit codes:
  0 done   1 the task failed or was canceled   2 usage error or invalid input
  3 missing or wrong API key   4 not found   5 hub unreachable or server error
  6 rate limited   7 timed out waiting (the task keeps running)   130 interrupted"""

Commands = Any  # argparse's subparsers action has no public type


def add_commands(commands_: Commands) -> None:
    """Register the client commands on the `imagehub` parser's subcommands."""
    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("connection")
    group.add_argument(
        "--url", help="the hub's URL (default: $IMAGEHUB_URL, else http://127.0.0.1:8000)"
    )
    group.add_argument(
        "--api-key", help="an API key (default: $IMAGEHUB_API_KEY, which keeps it out of ps)"
    )
    _add_generate(commands_, connection)
    _add_edit(commands_, connection)
    _add_tasks(commands_, connection)
    models = _parser(commands_, "models", connection, "list the models, or show one's parameters")
    models.add_argument("model_id", nargs="?", metavar="ID", help="a model id: its parameters")
    models.add_argument("--json", action="store_true", help="print the hub's JSON")
    models.set_defaults(run=commands.runner(commands.models))


def _parser(
    commands_: Commands, name: str, parent: argparse.ArgumentParser, text: str, epilog: str = ""
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands_.add_parser(
        name,
        parents=[parent],
        help=text,
        description=text[0].upper() + text[1:] + ".",
        epilog=f"{epilog}\n\n{EXIT_CODES_HELP}".strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _task_options(parser: argparse.ArgumentParser, model: str) -> None:
    parser.add_argument("prompt", help="what the image should show")
    parser.add_argument("-m", "--model", default=model, help=f"a model id (default {model})")
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a model parameter, repeatable (listed below)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="folder the images are saved in, as <task_id>-<n>.<ext> (default .)",
    )
    parser.add_argument("--json", action="store_true", help="print the task as JSON")
    parser.add_argument(
        "--no-wait", action="store_true", help="print the task id at once, do not wait"
    )
    _timeout_option(parser)


def _timeout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="stop waiting after this long (default 600); the task keeps running",
    )


def _add_generate(commands_: Commands, connection: argparse.ArgumentParser) -> None:
    parser = _parser(
        commands_,
        "generate",
        connection,
        "make images from a prompt and save them",
        catalog_help("text-to-image"),
    )
    _task_options(parser, "nano-banana-2")
    parser.set_defaults(run=commands.runner(commands.generate))


def _add_edit(commands_: Commands, connection: argparse.ArgumentParser) -> None:
    parser = _parser(
        commands_,
        "edit",
        connection,
        "edit or combine images with a prompt and save the results",
        catalog_help("image-to-image"),
    )
    _task_options(parser, "nano-banana-2/edit")
    parser.add_argument(
        "-i",
        "--image",
        action="append",
        required=True,
        metavar="FILE_OR_URL",
        help="an input image, repeatable: a local file (uploaded first) or an http(s) URL",
    )
    parser.add_argument(
        "--mask", metavar="FILE_OR_URL", help="a mask for the first image (gpt-image-2/edit)"
    )
    parser.set_defaults(run=commands.runner(commands.edit))


def _add_tasks(commands_: Commands, connection: argparse.ArgumentParser) -> None:
    tasks = commands_.add_parser("tasks", help="list, show, wait for or cancel tasks")
    actions = tasks.add_subparsers(title="actions", required=True, metavar="ACTION")
    listing = _parser(actions, "list", connection, "list your tasks, newest first")
    listing.add_argument("--model", help="only this model's tasks")
    listing.add_argument("--status", help="only tasks in this status (queued, running, ...)")
    listing.add_argument("--limit", type=_count, default=20, help="at most this many (0: all)")
    listing.add_argument("--json", action="store_true", help="one JSON task per line")
    listing.set_defaults(run=commands.runner(commands.tasks_list))
    for name, text, handler in (
        ("get", "print a task as JSON", commands.tasks_get),
        ("cancel", "cancel a queued or running task", commands.tasks_cancel),
        ("wait", "wait until a task is ready; print it, or save its images", commands.tasks_wait),
    ):
        parser = _parser(actions, name, connection, text)
        parser.add_argument("task_id", metavar="TASK_ID")
        parser.set_defaults(run=commands.runner(handler))
        if name == "wait":
            _timeout_option(parser)
            parser.add_argument("-o", "--output", type=Path, metavar="DIR", help="save here")
            parser.add_argument("--json", action="store_true", help="print the task as JSON")


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value
