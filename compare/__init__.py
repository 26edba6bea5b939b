"""The checker: runs the manual MLP and its torch twin in lockstep and compares every tensor."""
