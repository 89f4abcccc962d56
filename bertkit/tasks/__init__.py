"""The tasks bertkit trains, one package each."""
