"""Clone a repository over HTTP(S) with a token, through the tenant's egress proxy
(dulwich honours HTTPS_PROXY/HTTP_PROXY, which the sandbox sets)."""

import contextlib
import io
import tempfile

from dulwich import porcelain


@contextlib.contextmanager
def clone(url, ref, token):
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
