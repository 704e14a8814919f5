"""Tests of bench.core: registry, data, host functions."""
