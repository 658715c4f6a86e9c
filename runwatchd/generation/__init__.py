"""Generations: rules, request building, the submitter, the task follower."""
