"""Tests of bench.perf: the benchmark scripts run."""
