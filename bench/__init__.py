"""Benchmarks of ModelRatchet's decision code on simulated data."""
