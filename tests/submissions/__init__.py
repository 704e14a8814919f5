"""Tests of bench.submissions: the sandbox."""
