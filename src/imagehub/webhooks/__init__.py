"""Webhooks: Standard Webhooks signing and the delivery loop (`sender`)."""
