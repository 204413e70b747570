"""xmc command-line interface."""
