"""Outbound HTTP to addresses clients choose (input images, webhooks), made safe.

`address` decides which addresses may be reached, `client` is the one guarded HTTP client
(connect-time vetting, manual redirects, byte cap, deadline), `fetch` downloads input images.
"""
