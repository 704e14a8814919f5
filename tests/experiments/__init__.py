"""Tests of bench.experiments: paired comparison, requantization shares."""
