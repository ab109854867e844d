"""Dataset adapters: external benchmarks -> RealStreamEval samples."""
