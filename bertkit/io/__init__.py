"""Reading data files in, and writing prediction files out."""
