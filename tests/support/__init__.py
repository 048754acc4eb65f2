"""Helpers shared by every suite: reference models, comparisons, tolerances, hypothesis strategies."""
