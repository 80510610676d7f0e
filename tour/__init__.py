"""`make tour`: the screenshots of docs/tour.md, taken from the real product."""
