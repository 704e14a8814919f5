"""Tests of the defenses package (and of every registered transform's surrogates)."""
