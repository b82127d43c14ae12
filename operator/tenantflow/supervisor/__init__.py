"""Per-tenant limits as pure data structures: token buckets, concurrency caps, fair queues."""
