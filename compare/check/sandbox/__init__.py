"""User code kept where it cannot take the checker down: a child process, and the last call into it traced."""
