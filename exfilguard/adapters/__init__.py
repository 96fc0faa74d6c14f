"""The edge: reading and writing Azure, Event Grid parsing, storage, telemetry.

Adapters import only the core; the Azure SDKs are imported lazily inside them."""
