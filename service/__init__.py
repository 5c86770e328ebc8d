"""The query service: HTTP API over the index store (FastAPI)."""
