"""The All Tools tasks: a generated world to browse, task families and their checks, and training data made by
running the real tools."""
