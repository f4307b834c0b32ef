"""The PostgreSQL backend (built on the pgstore branch; this placeholder holds the waker only)."""
