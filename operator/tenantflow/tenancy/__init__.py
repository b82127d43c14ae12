"""What a Tenant owns, as plain manifests and pure status logic (no API calls here)."""
