"""pilotstate trainer: an LSTM over segment records, under MirroredStrategy."""
