"""Wire models: the pydantic shapes of every request and response the server speaks, one module per surface
(``chat``, ``accounts``, ``alltools``, ``assistant``, ``embeddings``, ``evals``, ``files``, ``fine_tuning``,
``glms``, ``images``, ``knowledge``; ``common`` for what they share). They describe and validate the wire and
hold no other logic.

The bottom layer: everything above (the HTTP routes, serving, the agent, knowledge, GLMs, ...) imports from
here, and nothing here imports any other part of OpenGLM. Import from the surface's module
(``from openglm.protocol.chat import ChatCompletionRequest``); this package re-exports nothing."""
