"""The webhook receiver (``prefect-stacks webhooks serve``): an ASGI app that verifies
deliveries from GitHub, GitLab, a Docker Distribution registry or the generic signed
scheme and emits the same prefect-stacks events the watchers emit.

One module per source (``github``, ``gitlab``, ``registry``, ``generic``), each with
``verify`` (signature or token over the raw body) and ``translate`` (to events, built only
with :mod:`prefect_stacks.events`); :mod:`prefect_stacks.webhooks.app` holds the app.
"""

from prefect_stacks.webhooks.app import create_app

__all__ = ["create_app"]
