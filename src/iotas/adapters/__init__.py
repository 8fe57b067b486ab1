"""Protocol adapters: each reaches Things over a protocol they already speak."""
