"""Masked-LM pretraining: corpora, packing, masking, WordPiece training, fill-mask and perplexity."""
