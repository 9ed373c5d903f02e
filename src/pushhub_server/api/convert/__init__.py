"""Proto ⇄ domain mapping: a module per service, and one for the types they share.

Pure data shuffling, no rules: validation lives in core. Only the edge's own
rules live here: which enum numbers and time values a message may carry.
"""
