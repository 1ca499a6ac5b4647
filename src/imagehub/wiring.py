"""The one place a hub is put together: every collaborator is built here, and only here."""

from __future__ import annotations

from imagehub.catalog import Catalog, Validator
from imagehub.estimates import Estimator
from imagehub.hub import Hub
from imagehub.media import MediaStore, open_media
from imagehub.media.previews import Previews
from imagehub.metrics import Metrics
from imagehub.outbound.address import AddressPolicy
from imagehub.outbound.client import SafeClient
from imagehub.outbound.fetch import Fetcher
from imagehub.routing.config import build_router
from imagehub.routing.router import Router
from imagehub.settings import Settings
from imagehub.store import Store, open_store
from imagehub.tenancy.accounts import Accounts
from imagehub.tenancy.limits import RedisRates
from imagehub.tenancy.pricing import Pricing
from imagehub.wakeups.notifier import Notifier
from imagehub.wakeups.shared import open_notifier
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
) -> Hub:
    """The hub the settings describe; a backend given here replaces the configured one.

    With `run_worker`, the process also runs tasks and sends webhooks (else it only serves
    the API, and other processes do the work).
    """
    catalog = catalog or Catalog.load()
    router = router or build_router(settings, catalog)
    store = store or _open_store(settings)
    media = media or open_media(settings)
    notifier = notifier or open_notifier(settings)
    pricing = Pricing.load(catalog)
    metrics = Metrics()
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
    if run_worker:
        worker = Worker(
            settings=settings,
            store=store,
            media=media,
            router=router,
            catalog=catalog,
            notifier=notifier,
            fetcher=fetcher,
            pricing=pricing,
        )
        webhooks = WebhookSender(settings=settings, store=store, accounts=accounts, client=client)
        notifier.on_finished(webhooks.task_finished)
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
        previews=Previews(media),
        estimator=Estimator(
            store.recent_attempts,
            store,
            window_seconds=settings.estimate_window_seconds,
            refresh_seconds=settings.estimate_refresh_seconds,
            default_seconds=settings.estimate_default_seconds,
        ),
        worker=worker,
        webhooks=webhooks,
    )


def _open_store(settings: Settings) -> Store:
    return open_store(
        settings.store_url,
        pool_size=settings.database_pool_size,
        migrate_on_open=settings.migrate_on_start,
        wait_seconds=settings.database_wait_seconds,
    )
