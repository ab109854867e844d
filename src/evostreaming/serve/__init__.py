"""The realtime server (FastAPI + WebSocket, one streaming session per connection), its web page and
the Python client (docs/server.md)."""
