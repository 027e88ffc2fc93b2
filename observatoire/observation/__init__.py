"""Continuous observation: each build a dated observation, and what changed between two."""
