"""Recorded search benchmarks: a table of learning curves (:mod:`.record`), searches
replayed against it (:mod:`.replay`), and the report that compares search strategies."""
