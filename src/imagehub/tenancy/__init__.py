"""Tenants and their keys: `keys` makes and hashes keys, `accounts` authenticates and keeps
webhook secrets, `limits` enforces request rates, concurrency and budgets."""
