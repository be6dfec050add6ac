"""The built-in eval suites; each module registers one in ``eval_suites``."""
