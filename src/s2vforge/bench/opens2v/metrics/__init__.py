"""OpenS2V-Eval metric modules; each exposes a `Metric` (see base.py)."""
