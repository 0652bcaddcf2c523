"""Table definitions (DDL as text) and applying them to a catalog."""
