"""pilotstate preprocessing: Kaggle CSVs to sharded, sorted, scaled TFRecord segments."""
