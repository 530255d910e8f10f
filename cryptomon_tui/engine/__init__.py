"""The engine: wires probing, metrics, detection, incidents, analysis, notify and store."""
