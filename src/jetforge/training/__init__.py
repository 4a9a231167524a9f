"""One training engine for every method: pre-training, fine-tuning, embedding export."""
