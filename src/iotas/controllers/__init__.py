"""Background work: one base for periodic work (`Periodic`: `run_once()`, an injectable clock,
bounded shutdown), one follower of the journal (`iotas.services.follow`), and the supervisor
that runs controllers, holding a lease for those that must run once per cluster."""
