"""Scores and traits: scoring into the output production table, trait sets, Segment's SQL-trait
contract, distributions, drift and the one drift gate. May import modelling, never publishing."""
