"""Tests of bench.zoo: models, training, the zoo and user models."""
