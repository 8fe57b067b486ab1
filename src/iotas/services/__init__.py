"""Use cases. Each public call is one transaction; the journal append is part of it."""
