"""Use cases, each written once and used by the Function app and the CLI.

Flows combine the core with adapters; they never import ``app`` or ``cli``."""
