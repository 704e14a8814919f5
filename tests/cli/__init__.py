"""Tests of bench.cli: the commands end to end, progress output."""
