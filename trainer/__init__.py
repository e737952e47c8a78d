"""Offline (and later online) training of the LEARN towers, evaluation and baselines."""
