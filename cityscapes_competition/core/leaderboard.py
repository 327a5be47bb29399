"""The leaderboard's columns: the keys of scores.json and scores.txt, which the settings' leaderboard names."""

PIXEL_KEYS = ("iou_class", "iiou_class", "iou_category", "iiou_category")
INSTANCE_KEYS = ("ap", "ap50", "ap100m", "ap50m")
LEADERBOARD_KEYS = PIXEL_KEYS + INSTANCE_KEYS  # in the order of scores.txt
