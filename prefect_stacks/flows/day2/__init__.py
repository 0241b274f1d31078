"""Day-2 jobs, one click each: maintenance mode, cache flush, monitoring silences,
database backups and copies, service power, and the safe deploy (docs/day2.md)."""
