"""The run service: every way a model is called — plain chat and completions, catalog All Tools agents, GLMs, the
Assistant API, the builder, retrieval grounding, embeddings, pictures — taken from a parsed request and the caller
to a result, for the routes, the job system (async results) and anything else that calls a model without an HTTP
request. See ``service.py``."""
