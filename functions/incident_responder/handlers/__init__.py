"""Lambda entry points: thin adapters over the core (parse, call, return)."""
