"""One file per model family: its adapter, its tiny offline twin and their ``register_family`` line
(every module here is imported by ``models.family.FAMILIES`` on first use)."""
