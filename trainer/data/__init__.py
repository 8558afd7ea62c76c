"""The input pipeline: windows cut from the records, streamed by tf.data or held on the device."""
