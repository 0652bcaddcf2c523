"""Detection rules: one SQL file each, metadata in a leading comment block."""
