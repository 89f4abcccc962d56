"""Training: the one mapping from recipe to TrainingArguments, fine-tuning and pretraining."""
