"""Naming what went wrong when a check fails: by replaying known mistakes, or by measuring the departure."""
