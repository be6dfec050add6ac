"""GLMs: agents people build (instructions, a model, tools, knowledge bases, HTTP APIs), versioned, shared and
listed in an agent center."""
