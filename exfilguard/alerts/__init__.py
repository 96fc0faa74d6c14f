"""Alerts people act on: Microsoft Teams Adaptive Cards and email.

The flow is ``model`` (what to say, built by the caller) -> ``content`` (the same words for
every channel) -> ``cards`` / ``mail`` (a Teams card, an HTML + text email) -> ``teams`` /
``smtp`` / ``acs`` (delivery), orchestrated by ``dispatch`` with ``ledger`` remembering what
was sent and what still has to be. Importing this package imports no Azure SDK.
"""
