"""Content safety: a registry of moderation checkers (``checkers.py``: operator word and pattern lists, an LLM
judge on a catalog model), the policy that says which run on a request's input and output (``policy.py``), the
guard that checks a stream as it is written and withholds what hits (``guard.py``), and the record of every hit
(``hits.py``). The run service applies it to model calls; ``POST /moderations`` asks the same checkers."""
