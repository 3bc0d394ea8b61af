"""The caption stage (pipeline.py) and its captioners (base.py: the contract)."""
