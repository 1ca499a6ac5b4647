"""Routing: which configured route serves a model, in what order, and what a failure means.

`router` holds `Route` and `Router` (with each route's health), `policy` the one failure policy
(retries, failover, cool-down), `config` builds the routes from the settings.
"""

from __future__ import annotations

from imagehub.routing.policy import FailurePolicy
from imagehub.routing.router import Route, Router

__all__ = ["FailurePolicy", "Route", "Router"]
