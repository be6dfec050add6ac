"""Fine-tuning: jobs on the job system, training-file validation, the trainer registry, fine-tuned models."""
