"""Use cases, each written once and used by the Function app and the CLI.

- :mod:`.event`: one Event Grid event in, one audited decision out (the Function trigger and
  ``exfilguard replay`` through :mod:`.replay`).
- :mod:`.evaluate`: evaluate around one resource (the event path and ``POST /api/evaluate``).
- :mod:`.sweep`: read a subscription, evaluate, act (``exfilguard scan --subscription`` via
  :mod:`.live`, and the Function app's timer and queued sweeps).
- :mod:`.remediate`: what is written and what is held as planned, and the one write loop;
  :mod:`.actions` wraps it with the loop guard, intents, alerts and audit.
- :mod:`.runtime`: the long-lived services a process shares, passed into the flows.

Flows combine the core with adapters; they never import ``app`` or ``cli``."""
