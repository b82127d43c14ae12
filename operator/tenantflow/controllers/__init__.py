"""kopf handlers: thin adapters between watch events and the pure layers."""
