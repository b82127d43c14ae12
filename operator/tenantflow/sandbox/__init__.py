"""The sandbox: where tenant code runs (never in the operator), and how the operator calls it."""
