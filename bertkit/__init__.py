"""bertkit: pretrain, fine-tune, evaluate and serve BERT models from YAML recipes."""

__version__ = "0.1.0"
