"""Figures: every figure of the chapters, drawn in one style for the site's column and stamped
with the weights state. Imports from ``core`` and ``methods``; never imported by them."""
