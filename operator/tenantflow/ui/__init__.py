"""The web UI (`tenantflow ui`): tenants, instances, an instance's journal as a timeline,
revisions side by side; served by `server.py`, shaped by `views.py`, drawn by the small
page in `static/` (no build step), acting as the person using it (`access.py`)."""
