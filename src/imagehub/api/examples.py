"""Request examples for the Model Reference page: curl, Python and JavaScript, per model.

Each example is a complete program a user can paste and run: it submits a task, waits until
`ready` is true and shows (or saves) the images. The key comes from the `IMAGEHUB_API_KEY`
environment variable, never from the page.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from imagehub.catalog import Catalog, ModelSpec, Validator, output_size
from imagehub.client.examples import python_example as sdk_example
from imagehub.render import task_out
from imagehub.tasks import OutputImage, Task, TaskOutput, TaskStatus, Usage

#: the example response's task and file ids: shaped as real ones, plainly examples
EXAMPLE_TASK_ID = "t_Example0Task0Id000000000"
EXAMPLE_TIME = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)

KEY_VARIABLE = "IMAGEHUB_API_KEY"


def _json(value: Any, indent: int = 2) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=False)


def _body(model_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"model": model_id, "input": params}


def curl_example(base_url: str, model_id: str, params: dict[str, Any]) -> str:
    """Submit and hold the answer until the task is ready (`Prefer: wait`).

    The body goes through a quoted heredoc, so no character of the prompt needs escaping.
    """
    return (
        f'curl -s "{base_url}/hub/v1/tasks" \\\n'
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        '  -H "Prefer: wait=30" \\\n'
        "  -d @- <<'JSON'\n"
        f"{_json(_body(model_id, params))}\n"
        "JSON\n"
    )


def _python_literal(value: Any, indent: int = 0) -> str:
    """`value` as Python source (JSON's true/false/null are not Python)."""
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [
            f"{pad}{json.dumps(k)}: {_python_literal(v, indent + 4)}," for k, v in value.items()
        ]
        return "{\n" + "\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_python_literal(v, indent) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid Python string
    return repr(value)  # bool, int, float, None


def python_example(base_url: str, model_id: str, params: dict[str, Any]) -> str:
    """The Python example of a model card: the SDK (`pip install imagehub`)."""
    return sdk_example(model_id, params, base_url=base_url)


def python_polling_example(base_url: str, model_id: str, params: dict[str, Any]) -> str:
    """The endpoint section's Python loop, on plain httpx: submit, then poll until ready."""
    body = _python_literal(_body(model_id, params))
    return f'''import os
from pathlib import Path

import httpx

client = httpx.Client(
    base_url="{base_url}",
    headers={{"Authorization": f"Bearer {{os.environ['{KEY_VARIABLE}']}}"}},
    timeout=90,
)

# 1. submit the task
task = client.post("/hub/v1/tasks", json={body}).raise_for_status().json()

# 2. poll until ready; ?wait=30 holds each call until the task is ready (30 s at most)
while not task["ready"]:
    response = client.get(f"/hub/v1/tasks/{{task['task_id']}}", params={{"wait": 30}})
    task = response.raise_for_status().json()

# 3. save the images
if task["status"] != "succeeded":
    raise SystemExit(f"{{task['status']}}: {{task['error']}}")
folder = Path("images")
folder.mkdir(exist_ok=True)
for image in task["output"]["images"]:
    (folder / image["file_name"]).write_bytes(client.get(image["url"]).content)
    print(folder / image["file_name"], image["width"], "x", image["height"])
'''


def javascript_example(base_url: str, model_id: str, params: dict[str, Any]) -> str:
    """Node 18 or newer (built-in fetch), as an ES module: save it as `generate.mjs`."""
    body = _json(_body(model_id, params)).replace("\n", "\n  ")
    return f"""// Node 18+: save as generate.mjs, then run: node generate.mjs
import {{ mkdir, writeFile }} from "node:fs/promises";

const HUB = "{base_url}";
const headers = {{
  Authorization: `Bearer ${{process.env.{KEY_VARIABLE}}}`,
  "Content-Type": "application/json",
}};

// 1. submit the task
let response = await fetch(`${{HUB}}/hub/v1/tasks`, {{
  method: "POST",
  headers,
  body: JSON.stringify({body}),
}});
let task = await response.json();
if (!response.ok) throw new Error(JSON.stringify(task.error));

// 2. poll until ready; ?wait=30 holds each call until the task is ready (30 s at most)
while (!task.ready) {{
  response = await fetch(`${{HUB}}/hub/v1/tasks/${{task.task_id}}?wait=30`, {{ headers }});
  task = await response.json();
}}

// 3. save the images
if (task.status !== "succeeded") throw new Error(`${{task.error.code}}: ${{task.error.message}}`);
await mkdir("images", {{ recursive: true }});
for (const image of task.output.images) {{
  const bytes = Buffer.from(await (await fetch(image.url)).arrayBuffer());
  await writeFile(`images/${{image.file_name}}`, bytes);
  console.log(`images/${{image.file_name}}`, image.width, "x", image.height);
}}
"""


def examples(base_url: str, model_id: str, params: dict[str, Any]) -> dict[str, str]:
    """Every example of one request, by language."""
    return {
        "curl": curl_example(base_url, model_id, params),
        "python": python_example(base_url, model_id, params),
        "javascript": javascript_example(base_url, model_id, params),
    }


def polling_loop(base_url: str, model_id: str, params: dict[str, Any]) -> str:
    """The shell version of submit-then-poll, for the endpoint section (needs jq)."""
    body = json.dumps(_body(model_id, params), ensure_ascii=False)
    auth = f'-H "Authorization: Bearer ${KEY_VARIABLE}"'
    return f"""HUB={base_url}

# 1. submit: the answer is the task, with its task_id
TASK_ID=$(curl -s "$HUB/hub/v1/tasks" {auth} \\
  -H "Content-Type: application/json" -d @- <<'JSON' | jq -r .task_id
{body}
JSON
)

# 2. poll GET /hub/v1/tasks/$TASK_ID until ready = true (?wait=30 long-polls)
until curl -s "$HUB/hub/v1/tasks/$TASK_ID?wait=30" {auth} > task.json \\
  && jq -e .ready task.json > /dev/null; do sleep 1; done

# 3. the result: output.images[] when succeeded, error when failed
jq '{{status, error, images: .output.images}}' task.json
"""


def upload_example(base_url: str) -> str:
    """Upload an input image for the edit models."""
    return (
        f'curl -s "{base_url}/hub/v1/files" \\\n'
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        "  -F file=@photo.png\n"
        '# answers {"file_id": "f_...", "url": "..."}: put that url in image_urls\n'
    )


def example_response(
    base_url: str,
    catalog: Catalog,
    validator: Validator,
    spec: ModelSpec,
    charged: tuple[str, float] | None = None,
) -> str:
    """A finished task of the model's example request, as `GET /hub/v1/tasks/{id}` answers.

    The input is the example with every default applied, the images are of the size that
    input asks for; `charged` is the route that would serve it and what it would cost there.
    """
    params = validator.validate(spec.id, spec.example).params
    width, height = output_size(catalog, spec, params)
    fmt = str(params.get("output_format", "png"))
    extension = {"jpeg": "jpg"}.get(fmt, fmt)
    images = tuple(
        OutputImage(
            content_type=f"image/{fmt}",
            file_name=f"{EXAMPLE_TASK_ID}-{i}.{extension}",
            file_size=1_482_915 + 7919 * i,
            width=width,
            height=height,
            file_id=f"f_Example0File0Id00000000{i}.{extension}",
        )
        for i in range(int(params.get("num_images", 1)))
    )
    route, cost = charged if charged is not None else ("gemini", 0.0)
    task = Task(
        id=EXAMPLE_TASK_ID,
        tenant_id="",
        model=spec.id,
        input=params,
        status=TaskStatus.SUCCEEDED,
        output=TaskOutput(images=images),
        provider=route,
        attempts=1,
        usage=Usage(cost_usd=cost, basis="per_image"),
        created_at=EXAMPLE_TIME,
        started_at=EXAMPLE_TIME + timedelta(milliseconds=180),
        finished_at=EXAMPLE_TIME + timedelta(seconds=14, milliseconds=620),
    )
    return _json(task_out(task, base_url).model_dump(mode="json"))
