"""ExfilGuard: keeps Azure Machine Learning networks from leaking data.

The package is a functional core (``model``, ``picture``, ``nsg``, ``rules``, ``fixes``)
surrounded by thin adapters (``sources``, ``writer``, ``state``, ``alerts``). Importing the
package imports no Azure SDK: adapters import them lazily so the Function app cold-starts fast.
"""

__version__ = "0.1.0"
