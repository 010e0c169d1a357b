"""Dutch identifiers, code systems and profiles."""
