"""The Function app's behaviour behind ``function_app.py``'s thin triggers.

``events``-driven handling (:mod:`.event_handler`), HTTP re-evaluation (:mod:`.http_api`),
sweeps (:mod:`.sweep`), the closure reads an event needs (:mod:`.closure`), what is done
about an evaluation (:mod:`.actions`), settings (:mod:`.settings`) and the per-process
services (:mod:`.runtime`). Importing this package imports no Azure SDK.
"""
