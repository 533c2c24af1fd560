"""The training loop, distribution strategies and metrics shared by run_*.py."""
