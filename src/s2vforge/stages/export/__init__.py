"""The export stage: training samples, near-duplicate removal, splits, and the formats trainers read."""
