"""Support code shared by the tests, the benchmarks and scripts/ (not part of the bptt package users import)."""
