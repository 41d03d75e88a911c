"""gridtwin benchmarks package."""
