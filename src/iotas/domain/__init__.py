"""Pure models and rules. No I/O, and nothing of iotas is imported here but `domain` itself."""
