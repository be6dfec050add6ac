"""The evaluation suite (``openglm eval``): suites in a registry, run against any catalog model or agent through
a real server's HTTP API, reported as JSON and Markdown with plots."""
