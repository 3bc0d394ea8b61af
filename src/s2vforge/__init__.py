"""s2vforge: an open data engine and benchmark for subject-consistent video generation."""

__version__ = "0.1.0"
