"""Bundled bertkit recipes, installed as the package `bertkit.bundled` (data only)."""
