"""From image files to aligned face crops: decoding, detection, 5-point alignment."""
