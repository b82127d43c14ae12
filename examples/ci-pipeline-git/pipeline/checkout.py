"""Clone a repository over HTTP(S) with a token, through the tenant's egress proxy
(dulwich and urllib honour HTTPS_PROXY/HTTP_PROXY, which the sandbox sets)."""

import base64
import contextlib
import io
import tempfile
import urllib.request

from dulwich import porcelain


def reachable(url, token):
    """Ask the git host once with urllib, whose errors carry the proxy's refusal
    ("403 Forbidden by tenantflow egress policy: ...") where dulwich would only say 403."""
    auth = base64.b64encode(f"ci:{token}".encode()).decode()
    request = urllib.request.Request(
        f"{url}/info/refs?service=git-upload-pack", headers={"Authorization": f"Basic {auth}"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read(1)


@contextlib.contextmanager
def clone(url, ref, token):
    reachable(url, token)
    with tempfile.TemporaryDirectory(prefix="checkout-") as path:
        repo = porcelain.clone(
            url,
            path,
            branch=ref,
            depth=1,
            errstream=io.BytesIO(),
            username="ci",
            password=token,
        )
        try:
            yield path, repo.head().decode()
        finally:
            repo.close()
