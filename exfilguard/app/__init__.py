"""The Function app's handlers behind ``function_app.py``'s thin triggers: each parses its
trigger's input, calls a flow (:mod:`exfilguard.flows`) and shapes the answer.

HTTP re-evaluation (:mod:`.http_api`), sweeps with their lease, checkpoint and stored report
(:mod:`.sweep`), dead letters (:mod:`.deadletter`) and settings (:mod:`.settings`). The event
path is :mod:`exfilguard.flows.event`, the per-process services :mod:`exfilguard.flows.runtime`.
Importing this package imports no Azure SDK.
"""
