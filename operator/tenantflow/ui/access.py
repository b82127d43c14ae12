"""Who a request to the web UI acts as. No auth system of our own: Kubernetes decides.

- `local` (`tenantflow ui`): the server acts with the user's own kubeconfig and listens on
  127.0.0.1 only. A browser page from anywhere else could still reach it, so every API
  call must carry the token printed in the URL at start (a custom header, which no other
  site's page can send without a CORS preflight we never answer), and the Host header
  must name this server (no DNS rebinding).
- `client` (the chart, in a cluster; `argo server --auth-mode=client`): every request
  carries the person's own bearer token (`Authorization: Bearer ...`: a ServiceAccount
  token, or an OIDC id token the API server accepts) and the server acts with that token
  alone. The UI pod has no permissions of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from aiohttp import web

from tenantflow.cache import Cache
from tenantflow.kube.client import Kube

TOKEN_HEADER = "X-Tenantflow-Token"
CLIENTS_KEPT = 64  # per-token API clients kept (their connections reused) ...
CLIENT_TTL = 300.0  # ... for this many seconds


@dataclass
class Access:
    kube: Kube  # local: the user's; client: where the API server is (its credentials unused)
    mode: str = "local"  # local | client
    hosts: frozenset[str] = frozenset()  # local: the Host headers this server answers to
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    clients: Cache[str, Kube] = field(
        default_factory=lambda: Cache(maxsize=CLIENTS_KEPT, ttl=CLIENT_TTL, on_evict=_close)
    )

    def kube_for(self, request: web.Request) -> Kube:
        """The API client this request acts with; 401 when it may not act at all."""
        if self.mode == "client":
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or len(auth) < 8:
                raise web.HTTPUnauthorized(
                    text='{"error": "send your Kubernetes token: Authorization: Bearer <token>"}',
                    content_type="application/json",
                )
            token = auth.removeprefix("Bearer ").strip()
            key = hashlib.sha256(token.encode()).hexdigest()
            kube = self.clients.get(key)
            if kube is None:
                kube = self.kube.as_user(token)
                self.clients.put(key, kube)
            return kube
        if request.host not in self.hosts:
            raise web.HTTPForbidden(
                text='{"error": "this UI answers only on the address it printed"}',
                content_type="application/json",
            )
        sent = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(sent.encode(), self.token.encode()):
            raise web.HTTPUnauthorized(
                text='{"error": "open the UI with the URL it printed (it carries a token)"}',
                content_type="application/json",
            )
        return self.kube


def _close(kube: Kube) -> None:
    """A client no longer kept: its connections closed (a stream still using it ends, and
    the browser opens the next one)."""
    task = asyncio.get_running_loop().create_task(kube.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()
