"""The pure core: ARM types, the resource model, NSG decisions, rules, findings and fixes.

Nothing here performs I/O or imports an Azure SDK; every other layer builds on it."""
