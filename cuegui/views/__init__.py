"""Widgets showing the models: one panel per table, the log panel, item delegates."""
