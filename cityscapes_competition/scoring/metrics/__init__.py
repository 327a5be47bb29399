"""The two metrics of the benchmark, one module each, with one contract (as TrackEval's metrics):

- ``evaluate_frame(...)`` turns one image into a record (numpy arrays, no references to the image);
- ``combine(records)`` reduces the records of every image to totals;
- ``summarize(totals)`` turns the totals into the scores (scores.PixelScores, scores.InstanceScores).

Pixel records reduce by addition (a confusion matrix and weighted counts), so the pixel totals stream in
fixed memory. Instance records are concatenated: AP ranks every prediction of a class across all images,
so only the last frame allows a result. Each module opens with the official rules it reproduces.
"""
