"""Text classification: single-label, multi-label and regression."""
