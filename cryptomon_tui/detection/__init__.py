"""Detection: rules over rolling metrics, baselines and correlation, producing incident signals."""
