"""pilotstate tuning: keras-tuner over the trainer's model and input pipeline."""
