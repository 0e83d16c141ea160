"""The AWS access layer: session, call recorder, retries and waits."""
