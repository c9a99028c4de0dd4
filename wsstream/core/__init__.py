"""The sans-I/O WebSocket core: bytes in, events out; calls in, bytes out. Nothing here imports asyncio."""
