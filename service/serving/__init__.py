"""The serving layer: the registry of loaded models, the publisher, the trainer and the workers."""
