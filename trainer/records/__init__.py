"""The record format shared with beam_preprocess (its writer): numpy only, no TensorFlow or Beam."""
