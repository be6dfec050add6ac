"""The one job system for background work: jobs persisted in the database, claimed by workers with leases and
heartbeats, cancellable, resumable from checkpoints (docs/architecture.md, "Jobs")."""
