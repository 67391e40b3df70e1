"""ModelRatchet: roll model checkpoints forward only when they hold up."""

__version__ = "0.1.0"
