"""Tests of the attacks package."""
