"""OpenAI's Responses API on the chat path: ``convert.py`` (requests, answers and streamed events) and
``store.py`` (stored answers, for retrieval and ``previous_response_id``)."""
