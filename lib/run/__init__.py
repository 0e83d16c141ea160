"""Running commands: the runner, its lock and its audit record."""
