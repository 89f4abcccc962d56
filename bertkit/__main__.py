"""`python -m bertkit`, which is also what `accelerate launch -m bertkit` runs."""

from bertkit.cli import main

if __name__ == "__main__":
    main()
