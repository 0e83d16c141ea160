"""The steps: what each notebook converges, and how it waits."""
