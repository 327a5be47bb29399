"""The participant's starting kit: the submission checker (runs ingestion and scoring locally on the
sample data) and the overlay pictures it saves."""
