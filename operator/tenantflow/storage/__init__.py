"""Per-tenant storage: the tenant's SQLite database behind `env.db`."""
