"""Incident lifecycle: dedup by fingerprint, cause over symptom, ack, silences, maintenance windows."""
