"""The agent's one SQLite database and the repositories that read and write it."""
