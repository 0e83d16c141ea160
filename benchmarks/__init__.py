"""Benchmarks of the runbook against a minimal boto3 reference (see run.py and README)."""
