"""Batches (OpenAI's and Zhipu's ``/batches``): a file of requests run by the job system through the run service,
at low priority and the batch price, answered as output and error files. See ``service.py``."""
