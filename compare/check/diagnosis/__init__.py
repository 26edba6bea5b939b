"""Naming the mistake once a check fails: replaying the known mistakes and textbook variants on the failing
piece (``known_mistakes``), a setting or loss scale of the user's named as a convention (``conventions``), a
whole network that exposes no layers rebuilt and replayed (``network_replay``), and every departing piece of a
user's network named (``model``)."""
