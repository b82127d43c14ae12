"""The local jail: a runner per tenant on the host, its zygote and tenant code in a
bubblewrap jail, its data dir a sized volume (when there is no kubelet node)."""
