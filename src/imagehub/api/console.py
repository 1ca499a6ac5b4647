"""The operator console at `/console`: keys, routes, tasks, usage and webhook deliveries.

The page itself holds no data: it is the same HTML for every visitor. Its scripts ask for an
admin key (kept in the browser, like the playground's) and read everything from the documented
admin routes (`/hub/v1/admin/...`), which check the key on every call; a key that is not an
admin's gets the API's 403 and the console shows a refusal.
"""

from __future__ import annotations

from importlib import metadata

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from imagehub.api import i18n
from imagehub.api.page import CSP, LANGUAGE_NAMES, _environment

endpoints = APIRouter(include_in_schema=False)


@endpoints.get("/console", response_class=HTMLResponse)
async def console_page(request: Request) -> HTMLResponse:
    """The console's shell, in the visitor's language; its data comes from the admin API."""
    language = i18n.negotiate(
        request.query_params.get("lang"),
        request.cookies.get(i18n.COOKIE),
        request.headers.get("accept-language"),
    )
    context = {
        "lang": language,
        "html_lang": i18n.LANGUAGES[language],
        "languages": LANGUAGE_NAMES,
        "page_path": "/console",
        "script_messages": i18n.script_catalog(language),
        "version": metadata.version("imagehub"),
    }
    html = _environment(language).get_template("console.html").render(context)
    headers = {
        "Content-Security-Policy": CSP,
        "Cache-Control": "no-cache",
        "Content-Language": i18n.LANGUAGES[language],
        "Vary": "Accept-Language, Cookie",
        "Referrer-Policy": "no-referrer",
    }
    return HTMLResponse(html, headers=headers)
