"""Tests of bench.eval: protocol, runner, adaptive ensemble, jobs, reproduce, sanity, SLURM."""
