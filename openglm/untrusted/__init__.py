"""Work on untrusted input (documents, pages, OpenAPI documents, grammars) that must not stall or kill the server:
a pool of killable worker processes with a time and memory budget per call, and cheap bounded loaders."""
