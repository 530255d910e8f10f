"""Types every layer shares: probe results and the outcome taxonomy, severity, fingerprints, time helpers.

The kernel imports nothing of the project (an import-linter contract holds it to that), so exchange
adapters, probing, the store and the faces can all depend on it without depending on each other.
"""
