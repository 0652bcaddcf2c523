"""Detection rules as files: one SQL query each, its header in a leading comment block; the
header keys (defined once in :mod:`loader.rules.keys`), reading and validation. Running them
is :mod:`loader.engine`."""
