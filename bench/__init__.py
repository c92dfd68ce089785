"""Benchmarks and profiles (README: Benchmarks); not part of the suite."""
