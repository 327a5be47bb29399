"""The ingestion program: model file -> safety check -> load -> inference -> result files.

submission_metadata and model_files find what was sent; hdf5_probe, model_safety and model_graph check
it before Keras sees it; model_loading loads it in safe mode; inference, upsampling and components
turn predictions into the results the scorer reads; run ties them into one run."""
