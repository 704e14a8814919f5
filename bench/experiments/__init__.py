"""Studies beside the leaderboard: the paired convergence check (``paired``, re-runs attacks from
the cache) and the JPEG requantization diagnostic (``requantization``, measures the data)."""
