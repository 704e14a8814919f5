"""Tests of bench.reports: leaderboard, README blocks, claims, the report interface, plots."""
