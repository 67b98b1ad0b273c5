"""The secure service: FastAPI app (``app.create_app``), bearer-token auth with roles, SQLite state with
migrations, Prometheus metrics, the SSE event log and the /v1 routers. ``netscaffold serve`` runs it."""
