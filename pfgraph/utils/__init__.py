"""Small shared helpers (atomic file writes, optional imports)."""
