"""The one place a hub is put together: every collaborator is built here, and only here."""

from __future__ import annotations

import socket

from imagehub.admin import Admin
from imagehub.catalog import Catalog, Validator
from imagehub.estimates import Estimator
from imagehub.hub import Hub
from imagehub.imagework import ImageWork
from imagehub.media import MediaStore, open_media
from imagehub.media.previews import Previews
from imagehub.metrics import Metrics
from imagehub.outbound.address import AddressPolicy
from imagehub.outbound.client import SafeClient
from imagehub.outbound.fetch import Fetcher
from imagehub.providers.demo import DemoProvider
from imagehub.routing.config import build_router
from imagehub.routing.router import Router
from imagehub.routing.states import RouteStatePublisher
from imagehub.settings import Settings
from imagehub.store import Store, open_store
from imagehub.tenancy.accounts import Accounts
from imagehub.tenancy.limits import RedisRates
from imagehub.tenancy.pricing import Pricing
from imagehub.tracing import Tracing, open_tracing
from imagehub.wakeups.notifier import Notifier
from imagehub.wakeups.shared import SharedNotifier, open_notifier
from imagehub.webhooks.sender import WebhookSender
from imagehub.worker import Worker

__all__ = ["build_hub"]


def build_hub(
    settings: Settings,
    *,
    run_worker: bool = True,
    router: Router | None = None,
    catalog: Catalog | None = None,
    store: Store | None = None,
    media: MediaStore | None = None,
    notifier: Notifier | None = None,
    tracing: Tracing | None = None,
    relay: socket.socket | None = None,
) -> Hub:
    """The hub the settings describe; a backend given here replaces the configured one.

    With `run_worker`, the process also runs tasks and sends webhooks (else it only serves
    the API, and other processes do the work). `relay` is a `serve --workers N` child's
    channel to its siblings, for wake-ups where the store has none (SQLite).
    """
    catalog = catalog or Catalog.load()
    #: CPU-heavy image work (demo drawing, transcodes, input decoding, previews): its processes
    work = ImageWork(
        processes=settings.image_processes, budget_pixels=settings.decode_budget_pixels
    )
    router = router or build_router(settings, catalog, work)
    store = store or _open_store(settings)
    media = media or open_media(settings)
    notifier = notifier or open_notifier(settings, relay)
    pricing = Pricing.load(catalog)
    metrics = _metrics(catalog, router)
    tracing = tracing or open_tracing(settings)
    #: every URL a client hands the hub is fetched through this one (images, webhooks)
    policy = AddressPolicy.parse(settings.fetch_allow_private)
    client = SafeClient(policy)
    rates = RedisRates(settings.redis_url, settings.wakeup_channel) if settings.redis_url else None
    accounts = Accounts(store, settings, rates)
    fetcher = Fetcher(
        media,
        max_bytes=settings.max_input_image_bytes,
        timeout=settings.fetch_timeout_seconds,
        client=client,
    )
    notifier.on_finished(metrics.finished)
    worker: Worker | None = None
    webhooks: WebhookSender | None = None
    route_states: RouteStatePublisher | None = None
    if run_worker:
        route_states = RouteStatePublisher(store, router, settings.route_state_seconds)
        worker = Worker(
            settings=settings,
            store=store,
            media=media,
            router=router,
            catalog=catalog,
            notifier=notifier,
            fetcher=fetcher,
            pricing=pricing,
            work=work,
            tracing=tracing,
            metrics=metrics,
            concurrency=_worker_concurrency(settings, router, work),
        )
        webhooks = WebhookSender(
            settings=settings,
            store=store,
            accounts=accounts,
            client=client,
            tracing=tracing,
            metrics=metrics,
        )
        notifier.on_finished(webhooks.task_finished)
        if isinstance(notifier, SharedNotifier):  # other workers need no hint for these
            notifier.claims_here = worker.has_room
    return Hub(
        settings=settings,
        store=store,
        media=media,
        catalog=catalog,
        validator=Validator(catalog),
        router=router,
        pricing=pricing,
        notifier=notifier,
        metrics=metrics,
        policy=policy,
        accounts=accounts,
        fetcher=fetcher,
        previews=Previews(media, work=work),
        work=work,
        estimator=Estimator(
            store.recent_attempts,
            store,
            window_seconds=settings.estimate_window_seconds,
            refresh_seconds=settings.estimate_refresh_seconds,
            default_seconds=settings.estimate_default_seconds,
        ),
        worker=worker,
        webhooks=webhooks,
        route_states=route_states,
        tracing=tracing,
    )


def _worker_concurrency(settings: Settings, router: Router, work: ImageWork) -> int:
    """The tasks the worker runs at once: fewer when the demo serves every model.

    Every demo task waits for the image work's few processes; claiming more than keeps them
    busy would only mark queued tasks running early, out of the fair queue's order (a tenant
    submitting later would wait behind all of them) and with an estimate that means nothing.
    """
    if router.configured() or not isinstance(router.fallback, DemoProvider):
        return settings.worker_concurrency
    # twice what the pool takes: the next tasks are claimed while it draws
    return min(settings.worker_concurrency, 2 * work.capacity)


def _metrics(catalog: Catalog, router: Router) -> Metrics:
    """Metrics whose labels take only the configured models, routes and providers."""
    routes = [route for routes in router.configured().values() for route in routes]
    names = {route.name for route in routes}
    kinds = {route.kind or "none" for route in routes}
    fallback = router.fallback
    if fallback is not None:  # the demo, or a test's stand-in, serving the models without routes
        names.add(fallback.name)
        kinds.add(str(getattr(fallback, "kind", "")) or "none")
    return Metrics(models=[model.id for model in catalog], routes=names, providers=kinds)


def _open_store(settings: Settings) -> Store:
    return open_store(
        settings.store_url,
        pool_size=settings.database_pool_size,
        migrate_on_open=settings.migrate_on_start,
        wait_seconds=settings.database_wait_seconds,
        synchronous_commit=settings.database_synchronous_commit,
    )


def build_admin(hub: Hub) -> Admin:
    """The operator's view over the hub's store and routes (the admin routes)."""
    nudge = hub.webhooks.nudge if hub.webhooks is not None else None
    return Admin(hub.store, hub.router, nudge)
