"""OpenAI's Responses API on the chat path: ``convert.py`` (requests, answers and streamed events),
``interpreter.py`` (the code_interpreter built-in's agent run as items and events) and ``store.py`` (stored
answers, for retrieval and ``previous_response_id``)."""
