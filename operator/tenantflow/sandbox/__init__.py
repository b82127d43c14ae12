"""The sandbox: where tenant code runs (never in the operator), and how the operator calls it.

Split by process, so the trust boundary shows in the tree: `pod` runs in the sandbox pod
(runner, zygote, worker, seccomp), `client` is what the operator reaches it with, and the
two share only `protocol`; `jail` is the local stand-in for the pod (a bubblewrap jail).
"""
