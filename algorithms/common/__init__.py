"""Pieces two or more agents share: networks, distributions, rollout, GAE, statistics."""
