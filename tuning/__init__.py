"""keras-tuner search over the trainer's LSTM: layer sizes, dropout, learning rate, minibatch size."""
