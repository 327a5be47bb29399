"""The participant's starting kit: the submission checker, which runs ingestion and scoring locally on the
sample data, projects the time for the test set and writes the zip to upload.

submission_check runs the steps; layout holds its names and numbers, check_log what it prints, sample_data
where it finds the sample, folders its output folder and a zipped submission's unpacking, time_projection
the projected time, overlays the pictures it saves."""
