"""The streaming runner: the rules over historical and new logs (Structured Streaming)."""
