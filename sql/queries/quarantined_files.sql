-- Log files that could not be loaded, and why. Empty is good.
SELECT path, reason, size, checked_at FROM cloudtrail_quarantine ORDER BY checked_at DESC, path
